"""Two `bench --quality` reports on the same prompts, side by side: which model answers better.

    python benchmarks/compare_checks.py CURRENT.json CANDIDATE.json [--mode parallel] [--json OUT.json]

For each objective check (aspd_local.bench.checks) it prints both shares and, over the prompts both
reports answered, how many answers only one of them gets right, with a two-sided sign-test p-value:
a difference of a few prompts out of 260 is noise, and the table says so. Then the speed of `parallel`
against `ar` in each report (tokens per second, same run), where the count misses are (by prompt category
and asked number), and the issue-13 targets met by the candidate.
A check is "better" when the candidate's share is lower (duplicates, loops, runaway) or higher (count
fidelity, blocks on list-style prompts, distinct-2); blocks on serial prompts are better lower.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# check -> (per-answer key in checks[mode]["rows"], higher is better, the prompts it applies to)
CHECKS = {
    "count_fidelity": ("count_ok", True, "list"),
    "duplicate_items": ("duplicate_items", False, "all"),
    "loops": ("loops", False, "all"),
    "runaway": ("runaway", False, "all"),
    "blocks_on_list_style": ("blocks", True, "list"),
    "blocks_on_serial": ("blocks", False, "serial"),
}
# issue 13's targets for the default model in `parallel` mode
TARGETS = {"count_fidelity": (">=", 0.85), "duplicate_items": ("<=", 0.02), "loops": ("<=", 0.02),
           "runaway": ("<=", 0.02), "blocks_on_list_style": (">=", 0.90), "blocks_on_serial": ("<=", 0.05)}


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if both were equally good."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(a_rows: list[dict], b_rows: list[dict], key: str, higher: bool, scope: str) -> dict:
    """Prompts where only A, or only B, passes the check (both answered, the check applies: ``scope`` is
    "all", "list" (list-style prompts) or "serial")."""
    a = {r["id"]: r for r in a_rows}
    only_a = only_b = n = 0
    for r in b_rows:
        other = a.get(r["id"])
        if (other is None or (scope == "list" and r["serial"]) or (scope == "serial" and not r["serial"])
                or r[key] is None or other[key] is None):
            continue
        n += 1
        pa, pb = bool(other[key]) == higher, bool(r[key]) == higher  # passes the check
        only_a += pa and not pb
        only_b += pb and not pa
    return {"prompts": n, "only_current": only_a, "only_candidate": only_b, "p": round(sign_test(only_b, only_a), 4)}


def speed(report: dict) -> float | None:
    """`parallel` against `ar` in tokens per second, as the report's summary gives it (same run)."""
    s = report.get("summary", {})
    if s.get("parallel", {}).get("speedup_vs_ar") is not None:
        return round(s["parallel"]["speedup_vs_ar"], 3)
    if "ar" in s and "parallel" in s and s["ar"].get("tokens_per_s"):  # reports from before the field
        return round(s["parallel"]["tokens_per_s"] / s["ar"]["tokens_per_s"], 3)
    return None


def asked_group(asked: int) -> str:
    return "asked 2-4" if asked <= 4 else "asked 5-7" if asked <= 7 else "asked 8+"


def count_groups(a_rows: list[dict], b_rows: list[dict]) -> dict:
    """Count fidelity where the misses are: answers meeting the asked count per prompt category and per
    asked number (2-4, 5-7), over the prompts both reports answered: {group: [prompts, current met,
    candidate met]}."""
    a = {r["id"]: r for r in a_rows}
    out: dict[str, list[int]] = {}
    for r in b_rows:
        other = a.get(r["id"])
        if other is None or r.get("count_ok") is None or other.get("count_ok") is None:
            continue
        for group in (r.get("category", "?"), asked_group(r["asked"])):
            g = out.setdefault(group, [0, 0, 0])
            g[0] += 1
            g[1] += bool(other["count_ok"])
            g[2] += bool(r["count_ok"])
    return dict(sorted(out.items()))


def compare(current: dict, candidate: dict, mode: str = "parallel") -> dict:
    ha, hb = current["checks_headline"], candidate["checks_headline"]
    rows_a, rows_b = current["checks"][mode]["rows"], candidate["checks"][mode]["rows"]
    out = {"mode": mode, "checks": {}, "speed_parallel_vs_ar": {"current": speed(current),
                                                                  "candidate": speed(candidate)}}
    for check, (key, higher, scope) in CHECKS.items():
        a, b = ha[mode][check], hb[mode][check]
        entry = {"current": a, "candidate": b, "better": None if a == b else (b > a) == higher}
        entry.update(paired(rows_a, rows_b, key, higher, scope))
        out["checks"][check] = entry
    out["count_groups"] = count_groups(rows_a, rows_b)
    a, b = ha[mode]["distinct_2"], hb[mode]["distinct_2"]
    out["checks"]["distinct_2"] = {"current": a, "candidate": b, "better": None if a == b else b > a}
    # the candidate's parallel against its own ar on the answer checks (issue 13: parallel at least as
    # good); blocks are what parallel mode adds, so they have no ar counterpart
    if "ar" in hb:
        answer_checks = {c: higher for c, (key, higher, _) in CHECKS.items() if key != "blocks"}
        out["candidate_parallel_vs_ar"] = {
            check: {"ar": hb["ar"][check], mode: hb[mode][check],
                    "at_least_as_good": (hb[mode][check] >= hb["ar"][check]) == higher
                    or hb[mode][check] == hb["ar"][check]}
            for check, higher in {**answer_checks, "distinct_2": True}.items()}
    out["targets"] = {check: {"want": f"{op} {v}", "candidate": hb[mode][check],
                              "met": hb[mode][check] is not None and (hb[mode][check] >= v if op == ">=" else hb[mode][check] <= v)}
                      for check, (op, v) in TARGETS.items()}
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def print_table(c: dict, names: tuple[str, str]) -> None:
    print(f"mode {c['mode']}: {names[0]} (current) vs {names[1]} (candidate)")
    print(f"  {'check':<22}{'current':>9}{'candidate':>11}  {'only cur':>8}{'only cand':>10}{'sign p':>8}")
    for check, e in c["checks"].items():
        fmt = (lambda x: "-" if x is None else f"{x:.3f}") if check == "distinct_2" else _pct
        extra = (f"  {e['only_current']:>8}{e['only_candidate']:>10}{e['p']:>8.3f}" if "p" in e else "")
        mark = {True: "better", False: "worse", None: "same"}[e["better"]]
        print(f"  {check:<22}{fmt(e['current']):>9}{fmt(e['candidate']):>11}{extra}  {mark}")
    groups = "; ".join(f"{g} {cur}/{cand} of {n}" for g, (n, cur, cand) in c["count_groups"].items())
    print(f"  count met (current/candidate), by category and asked number: {groups}")
    s = c["speed_parallel_vs_ar"]
    ratio = {k: "- (no ar run)" if v is None else f"{v}x" for k, v in s.items()}
    print(f"  parallel / ar tokens per second: current {ratio['current']}, candidate {ratio['candidate']}")
    if "candidate_parallel_vs_ar" in c:
        worse = [k for k, v in c["candidate_parallel_vs_ar"].items() if not v["at_least_as_good"]]
        print(f"  candidate parallel at least as good as its ar on every check: {'yes' if not worse else 'no: ' + ', '.join(worse)}")
    met = [k for k, v in c["targets"].items() if v["met"]]
    missed = [f"{k} {_pct(v['candidate'])} (want {v['want']})" for k, v in c["targets"].items() if not v["met"]]
    print(f"  targets met: {', '.join(met) or 'none'}")
    if missed:
        print(f"  targets missed: {'; '.join(missed)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("current", type=Path)
    p.add_argument("candidate", type=Path)
    p.add_argument("--mode", default="parallel")
    p.add_argument("--json", type=Path, default=None, help="write the comparison here")
    a = p.parse_args(argv)
    reports = []
    for path in (a.current, a.candidate):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            r["checks"][a.mode]["rows"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"error: {path} is not a `bench --quality` report with mode {a.mode} ({e!r})", file=sys.stderr)
            return 2
        reports.append(r)
    if reports[0].get("prompts_file") != reports[1].get("prompts_file"):
        print(f"error: the reports answer different prompt files ({reports[0].get('prompts_file')} vs "
              f"{reports[1].get('prompts_file')})", file=sys.stderr)
        return 2
    c = compare(*reports, mode=a.mode)
    print_table(c, (a.current.name, a.candidate.name))
    if a.json:
        a.json.write_text(json.dumps(c, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
