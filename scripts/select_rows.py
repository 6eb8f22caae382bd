"""A seeded selection of training rows by what they are, to put a mix together for training a delta further.

    python scripts/select_rows.py ROWS.jsonl [ROWS2.jsonl ...] --out OUT.jsonl [--block | --serial]
        [--numberless | --counted] [--not-in MIX.jsonl ...] [--twins-of ROWS.jsonl ...] [--skip-category C ...]
        [--sample N] [--seed S]

``--block``/``--serial``: rows with or without a parallel block. ``--numberless``/``--counted``: rows
whose prompt states no number of items, or one (``data.quality.asked_count``). ``--not-in``: leave out rows
whose id is in these files. ``--twins-of``: keep only rows whose twin (``data.prompts.pair_id``: a serial
prompt that looks like a list and its list-style twin on the same topic) is in these files. ``--sample N``: a seeded sample of N of what is left (all when fewer). Rows are
written in input order, de-duplicated by id (first file first); it prints how many it wrote.
"""

from __future__ import annotations

import argparse
import random
import sys

from aspd_local.data.jsonl import DataFileError, read_jsonl, write_jsonl
from aspd_local.data.prompts import pair_id
from aspd_local.data.quality import asked_count
from aspd_local.data.segments import has_block


def prompt_of(row: dict) -> str:
    return row["messages"][-1]["content"] if "messages" in row else row["prompt"]


def select(rows: list[dict], *, block: bool | None = None, counted: bool | None = None,
           exclude: set[str] = frozenset(), twins_of: set[str] | None = None, skip_categories: set[str] = frozenset(), sample: int | None = None,
           seed: int = 0) -> list[dict]:
    seen: set[str] = set()
    kept = []
    for r in rows:
        if r["id"] in seen or r["id"] in exclude or r.get("category") in skip_categories:
            continue
        if twins_of is not None and pair_id(r["id"]) not in twins_of:
            continue
        seen.add(r["id"])
        if block is not None and has_block(r) != block:
            continue
        if counted is not None and (asked_count(prompt_of(r)) is not None) != counted:
            continue
        kept.append(r)
    if sample is not None and sample < len(kept):
        picked = set(random.Random(seed).sample(range(len(kept)), sample))
        kept = [r for i, r in enumerate(kept) if i in picked]
    return kept


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", nargs="+")
    p.add_argument("--out", required=True)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--block", action="store_const", const=True, dest="block")
    kind.add_argument("--serial", action="store_const", const=False, dest="block")
    num = p.add_mutually_exclusive_group()
    num.add_argument("--counted", action="store_const", const=True, dest="counted")
    num.add_argument("--numberless", action="store_const", const=False, dest="counted")
    p.add_argument("--not-in", nargs="+", default=[], metavar="MIX")
    p.add_argument("--twins-of", nargs="+", default=None, metavar="ROWS")
    p.add_argument("--skip-category", nargs="+", default=[], metavar="C")
    p.add_argument("--sample", type=int, default=None, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.sample is not None and a.sample < 0:
        p.error("--sample must be 0 or more")
    try:
        rows = [r for f in a.rows for r in read_jsonl(f, ("id",))]
        exclude = {r["id"] for f in a.not_in for r in read_jsonl(f, ("id",))}
        twins_of = None if a.twins_of is None else {r["id"] for f in a.twins_of for r in read_jsonl(f, ("id",))}
    except DataFileError as e:
        raise SystemExit(f"error: {e}") from None
    kept = select(rows, block=a.block, counted=a.counted, exclude=exclude, twins_of=twins_of, skip_categories=set(a.skip_category),
                  sample=a.sample, seed=a.seed)
    write_jsonl(a.out, kept)
    print(f"{len(kept)} rows -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
