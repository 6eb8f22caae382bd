"""What a bench run says about an ASPD model beyond speed: how adaptive its decoding is (does it open
parallel blocks where the answer is a list, and stay serial where it is not), and whether its parallel
answers are as good as its own plain answers.

Quality is judged against the plain (``ar``) answer of the same model on the same prompt:
- the mean per-token log-likelihood of each answer text under a reference model (the base model),
  given the same chat prompt; the relative difference of the parallel answer's to the ar answer's;
- ROUGE-L (F1 over the longest common subsequence of words) between the two texts.

The reference model judges each answer given a context, the *judge*:
- ``chat``: the user's message alone, in the reference's chat template;
- ``fewshot``: the same few example turns in front that the data pipeline gives the base model when it
  writes the answers the default model is trained on (``aspd_local.data.fewshot``). A pretrained base
  model asked bare is no chat model (it repeats the question or invents turns) and rates the chat style of
  its own few-shot answers low; with the examples in front it judges answers as the chat model whose
  answers the training data are.
Both are reported; they can disagree, and docs/aspd-pipeline.md says by how much.

A small model's plain answers often loop (the same line again and again), and a loop is very likely
text per token: the mean log-likelihood rewards it. So the comparison is also reported over the prompts
where neither answer loops (the data pipeline's own loop check, ``aspd_local.data.quality``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from ..data.fewshot import messages_for
from ..data.quality import LOOPING, answer_problems

SERIAL_PREFIX = "serial"  # categories whose answers should stay serial start with this

# judge name -> the chat messages the reference model is given before the answer it scores
JUDGES = {
    "chat": lambda prompt: [{"role": "user", "content": prompt}],
    "fewshot": messages_for,
}


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 between two texts, over whitespace-separated words."""
    x, y = a.split(), b.split()
    if not x or not y:
        return 1.0 if x == y else 0.0
    prev = [0] * (len(y) + 1)
    for xi in x:
        cur = [0]
        for j, yj in enumerate(y):
            cur.append(prev[j] + 1 if xi == yj else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(y), lcs / len(x)
    return 2 * p * r / (p + r)


def adaptivity(results: list[dict], mode: str = "parallel") -> dict:
    """Per category: the share of prompts on which ``mode`` opened at least one block; and the same over
    list-style (non-serial) and serial categories."""
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        if r["mode"] == mode:
            by_cat[r["category"]].append(r["blocks"] > 0)
    out = {"per_category": {c: {"prompts": len(v), "opened": sum(v), "share": round(sum(v) / len(v), 4)}
                            for c, v in sorted(by_cat.items())}}
    for group, pick in (("list_style", lambda c: not c.startswith(SERIAL_PREFIX)),
                        ("serial", lambda c: c.startswith(SERIAL_PREFIX))):
        v = [x for c, xs in by_cat.items() if pick(c) for x in xs]
        out[group] = {"prompts": len(v), "opened": sum(v), "share": round(sum(v) / len(v), 4) if v else None}
    return out


def report_key(judge: str) -> str:
    """Where a bench report keeps the quality figures of ``judge``."""
    return "quality" if judge == "chat" else f"quality_{judge}"


def loops(prompt: str, text: str) -> bool:
    return bool(LOOPING & set(answer_problems(prompt, text)))


def mean_loglik(engine, prompt: str, text: str, judge: str = "chat") -> float | None:
    """Mean natural-log likelihood per token of ``text`` as the answer to ``prompt`` under ``engine``, given
    the context of ``judge`` (see ``JUDGES``)."""
    toks = engine.tokenize(text)
    if not toks:
        return None
    # keep_prefix=False: every answer to a prompt is scored after the same decode of the prompt, so the two
    # answers of a pair are judged alike (identical texts get identical scores)
    lps = engine.score(engine.prompt_tokens(JUDGES[judge](prompt)), toks, keep_prefix=False)
    return sum(lps) / len(lps)


def quality(results: list[dict], prompts: list[dict], reference, mode: str = "parallel", ref_mode: str = "ar",
            log=None, judge: str = "chat") -> dict:
    """Compare ``mode``'s answers with ``ref_mode``'s, per prompt and per category; ``reference`` is an Engine
    (the base model) that scores both texts in the context of ``judge``."""
    if judge not in JUDGES:
        raise ValueError(f"unknown judge {judge!r}; known: {', '.join(JUDGES)}")
    text = {(r["id"], r["mode"]): r for r in results}
    prompt_of = {p["id"]: p["prompt"] for p in prompts}
    rows = []
    for i, p in enumerate(prompts):
        a, b = text.get((p["id"], mode)), text.get((p["id"], ref_mode))
        if a is None or b is None:
            continue
        la = mean_loglik(reference, prompt_of[p["id"]], a["text"], judge)
        lb = mean_loglik(reference, prompt_of[p["id"]], b["text"], judge)
        rows.append({"id": p["id"], "category": p.get("category", ""), "blocks": a["blocks"],
                     f"loglik_{mode}": None if la is None else round(la, 4),
                     f"loglik_{ref_mode}": None if lb is None else round(lb, 4),
                     "rouge_l": round(rouge_l(a["text"], b["text"]), 4),
                     "loops": {mode: loops(prompt_of[p["id"]], a["text"]),
                               ref_mode: loops(prompt_of[p["id"]], b["text"])}})
        if log:
            log(f"quality ({judge}) [{i + 1}/{len(prompts)}] {p['id']}: "
                f"loglik {mode} {la if la is None else round(la, 3)}, "
                f"{ref_mode} {lb if lb is None else round(lb, 3)}, rouge-l {rows[-1]['rouge_l']}")

    def agg(rs: list[dict]) -> dict:
        pairs = [(r[f"loglik_{mode}"], r[f"loglik_{ref_mode}"]) for r in rs
                 if r[f"loglik_{mode}"] is not None and r[f"loglik_{ref_mode}"] is not None]
        out = {"prompts": len(rs), "rouge_l_mean": round(statistics.fmean(r["rouge_l"] for r in rs), 4) if rs else None}
        if pairs:
            m, ref = statistics.fmean(x for x, _ in pairs), statistics.fmean(y for _, y in pairs)
            out.update({f"loglik_{mode}": round(m, 4), f"loglik_{ref_mode}": round(ref, 4),
                        # > 0: the parallel answers are less likely per token than the plain ones
                        "relative_drop": round((ref - m) / abs(ref), 4) if ref else None})
        return out

    cats = sorted({r["category"] for r in rows})
    with_blocks = [r for r in rows if r["blocks"] > 0]
    clean = [r for r in rows if not any(r["loops"].values())]
    return {"mode": mode, "vs": ref_mode, "judge": judge, "rows": rows, "all": agg(rows),
            "prompts_with_blocks": agg(with_blocks) if with_blocks else None,
            "no_loops": agg(clean) if clean else None,
            "no_loops_with_blocks": agg([r for r in clean if r["blocks"] > 0]) if clean else None,
            "looping_answers": {m: sum(r["loops"][m] for r in rows) for m in (mode, ref_mode)},
            "per_category": {c: agg([r for r in rows if r["category"] == c]) for c in cats},
            "per_category_no_loops": {c: agg(v) for c in cats
                                      if (v := [r for r in clean if r["category"] == c])}}
