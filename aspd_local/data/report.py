"""The human-readable data report (report.md) from the statistics."""

from __future__ import annotations


def render_report(s: dict) -> str:
    ind = s["independence"]
    base = (s.get("base") or {}).get("title", "Gemma 3 270M, pretrained")
    chat_alone = set(s.get("fewshot") or ()) == {"none"}  # an instruct base, asked in its chat template alone
    asked = ("with the user message alone in its chat template" if chat_alone else
             "after a few fixed example turns (`aspd_local/data/fewshot.py`; the rows hold the user message alone)")
    caps = s.get("answers_max_tokens") or {}
    known = sorted(int(k) for k in caps if k != "?")
    cap = (f"at most {'/'.join(map(str, known))} tokens" if known else "under a token cap")
    if caps.get("?"):
        cap += f" ({caps['?']} answers from before answers recorded their cap)"
    lines = [
        "# ASPD training data: statistics",
        "",
        "Built by `python -m aspd_local data build` from the base model's own answers "
        "(`python -m aspd_local data answers`).",
        "",
        f"Method: every training prompt was answered by the base model ({base}) through the "
        f"engine, greedy, {cap}, {asked}; an answer that looped or "
        "copied an example was tried once more with repetition penalty 1.1, then dropped if still bad. "
        "Answers whose number of top-level items differs from the number the prompt asks for, with a "
        "duplicate item, or with block titles that repeat, contain one another or are placeholders "
        "(\"Tip\", \"Reason 2\") are dropped (`aspd_local/data/filters.py`), and so are prompts identical or "
        "close (token Jaccard >= 0.8) to the independent evaluation set.",
        "",
        f"- few-shot sets the answers were written with: {s.get('fewshot', {})}",
        f"- independent evaluation set: {s.get('independent_set', {}).get('prompts', 0)} prompts; answers "
        f"dropped as too close to one: {s.get('independent_set', {}).get('answers_dropped', 0)}",
        f"- answers kept: {s.get('answers_kept', '?')} of {s['answers']} (how they ended: "
        f"{s.get('answers_ended', {})}; repetition penalty used: {s.get('answers_repeat_penalty', {})})",
        f"- answers: {s['answers']}; training rows: {s['rows']} "
        f"({s['parallel_rows']} parallel, {s['serial_rows']} serial; share parallel {s['share_parallel']:.1%})",
        f"- blocks: {s['blocks']}; mean branches per block {s['mean_branches_per_block']}; "
        f"branches per block: {s['branches_per_block']}",
        f"- tokens per branch: mean {s['tokens_per_branch']['mean']}, median {s['tokens_per_branch']['median']}, "
        f"min {s['tokens_per_branch']['min']}, max {s['tokens_per_branch']['max']}",
        f"- block kinds: {s['block_kinds']}",
        "",
        "## Rejections (first reason per answer)",
        "",
        "| reason | answers |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in s["rejections"].items()] or ["| (none) | 0 |"]
    if s.get("count"):
        lines += [
            "",
            "## Prompts that ask for N items",
            "",
            "usable: not rejected when written; N items: the answer has exactly N top-level list items; "
            "rows: kept after every check.",
            "",
            "| N | answers | usable | N items | rows |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {k} | {v['answers']} | {v['usable']} | {v['items_match']} | {v['rows']} |"
                  for k, v in s["count"].items()]
    lines += [
        "",
        "## Independence",
        "",
        "For each branch after the first: mean log-likelihood per token of its content under the base model "
        "given prompt + text before the block + its title prefix, and given that plus the sibling branches "
        "before it. An answer's worst gain is the largest difference over its branches.",
        "",
        "Only each item's body is scored; its lead (list marker, bold lead, header) is in the prefix of both "
        "measurements, since the title fixes it. Why the default of 1.0 nats/token (chosen on Gemma 3 270M's "
        "answers): their median worst gain is about 0.6 -- Gemma 3 270M words the items of one list alike "
        "(\"it helps keep ...\"), which siblings make predictable without the content depending on them; "
        "the answers above 1.0 were those whose items copy a sibling or are written against one "
        "(\"Lakes: they are smaller bodies of water\" after \"Rivers: they are large ...\").",
        "",
        f"- threshold: {ind['threshold_nats_per_token']} nats/token; answers scored: {ind['answers_scored']}",
        f"- worst gain percentiles: {ind['worst_gain_percentiles']}",
        "",
        "## Per category",
        "",
        "| category | answers | rows | parallel rows |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c} | {v.get('answers', 0)} | {v['rows']} | {v['parallel']} |" for c, v in s["per_category"].items()]
    lines += ["", "## Time per stage (seconds)", "", "`answers_summed` adds up each answer's own time: with several "
              "answers in flight at once the wall time was less.", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in s.get("seconds", {}).items()]
    return "\n".join(lines) + "\n"
