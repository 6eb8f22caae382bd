"""Objective checks of answers, the figures a quality report leads with.

A likelihood judge rewards loops (a line repeated sixty times is very likely text), so a report first
says what anyone can count in the answers themselves:

- **count fidelity**: the prompt asks for N items (a ``count`` field in the prompt file, else the first
  number 2-10 in the prompt that counts things); the answer has exactly N top-level list items;
- **duplicate items**: two top-level items (or two titles of one block) name the same thing;
- **loops**: a line or a six-word phrase repeats (the data pipeline's own check, ``data.quality``);
- **runaway**: the answer ran into the token cap (finish reason ``length``);
- **distinct-2**: distinct word bigrams over all bigrams of the answer;
- **length**: tokens and words.

Items are read from the rendered text, the same way for every mode: lines that start with a list
marker (``-``, ``*``, ``+``, ``1.``, ``1)``) or with a bold title (``**Name**:``), at the smallest
indentation any such line has. A parallel answer renders each branch as such a line, so a block of N
branches and a plain list of N lines count alike.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from ..data.quality import count_of, distinct_2, item_name, list_items, words
from .quality import SERIAL_PREFIX, loops


def check_answer(row: dict, result: dict) -> dict:
    """The objective checks of one answer. ``row``: the prompt row; ``result``: a bench result row
    (``text``, ``tokens``, ``finish_reason``, and ``titles`` when the mode opened blocks)."""
    text = result["text"]
    items = list_items(text)
    names = [n for n in (item_name(i) for i in items) if n]
    asked = count_of(row)
    titles = result.get("titles") or []
    dup_titles = any(len({t.strip().lower() for t in block}) < len(block) for block in titles)
    return {
        "asked": asked,
        "items": len(items),
        "count_ok": None if asked is None else len(items) == asked,
        "duplicate_items": len(set(names)) < len(names) or dup_titles,
        "loops": loops(row["prompt"], text),
        "runaway": result.get("finish_reason") == "length",
        "distinct_2": distinct_2(text),
        "words": len(words(text)),
        "tokens": result.get("tokens"),
    }


def _rate(xs: list[bool]) -> dict:
    return {"n": len(xs), "yes": sum(xs), "share": round(sum(xs) / len(xs), 4) if xs else None}


def _aggregate(rows: list[dict]) -> dict:
    counted = [r["count_ok"] for r in rows if r["count_ok"] is not None]
    d2 = [r["distinct_2"] for r in rows if r["distinct_2"] is not None]
    return {
        "prompts": len(rows),
        "count_fidelity": _rate(counted),
        "duplicate_items": _rate([r["duplicate_items"] for r in rows]),
        "loops": _rate([r["loops"] for r in rows]),
        "runaway": _rate([r["runaway"] for r in rows]),
        "distinct_2_mean": round(statistics.fmean(d2), 4) if d2 else None,
        "words_mean": round(statistics.fmean(r["words"] for r in rows), 1) if rows else None,
        "tokens_mean": round(statistics.fmean(r["tokens"] for r in rows if r["tokens"] is not None), 1)
        if any(r["tokens"] is not None for r in rows) else None,
    }


def is_serial(row: dict) -> bool:
    """A prompt whose answer should stay serial: ``kind: serial``, or a category starting with 'serial'."""
    kind = row.get("kind")
    return kind == "serial" if kind else str(row.get("category", "")).startswith(SERIAL_PREFIX)


def objective_checks(results: list[dict], prompts: list[dict]) -> dict:
    """Per mode: the checks over all prompts, over list-style and serial prompts, and per category; plus
    the answers of each mode that fail a check (ids), so a reader can look at them."""
    by_id = {p["id"]: p for p in prompts}
    per_mode: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        row = by_id.get(r["id"])
        if row is None:
            continue
        c = check_answer(row, r)
        c.update(id=r["id"], category=row.get("category", ""), serial=is_serial(row), blocks=r.get("blocks", 0))
        per_mode[r["mode"]].append(c)
    out = {}
    for mode, rows in per_mode.items():
        listy = [r for r in rows if not r["serial"]]
        serial = [r for r in rows if r["serial"]]
        cats = sorted({r["category"] for r in rows})
        out[mode] = {
            "all": _aggregate(rows),
            "list_style": _aggregate(listy),
            "serial": _aggregate(serial),
            "blocks_opened": {"list_style": _rate([r["blocks"] > 0 for r in listy]),
                              "serial": _rate([r["blocks"] > 0 for r in serial])},
            "per_category": {c: _aggregate([r for r in rows if r["category"] == c]) for c in cats},
            "failures": {
                "count": [r["id"] for r in rows if r["count_ok"] is False],
                "duplicate_items": [r["id"] for r in rows if r["duplicate_items"]],
                "loops": [r["id"] for r in rows if r["loops"]],
                "runaway": [r["id"] for r in rows if r["runaway"]],
            },
            "rows": rows,
        }
    return out


def headline(checks: dict) -> dict:
    """The few numbers a report prints first, per mode (list-style prompts; blocks also on serial ones)."""
    out = {}
    for mode, c in checks.items():
        ls = c["list_style"]
        out[mode] = {
            "count_fidelity": ls["count_fidelity"]["share"],
            "duplicate_items": c["all"]["duplicate_items"]["share"],
            "loops": c["all"]["loops"]["share"],
            "runaway": c["all"]["runaway"]["share"],
            "distinct_2": c["all"]["distinct_2_mean"],
            "blocks_on_list_style": c["blocks_opened"]["list_style"]["share"],
            "blocks_on_serial": c["blocks_opened"]["serial"]["share"],
            "prompts": c["all"]["prompts"],
        }
    return out

