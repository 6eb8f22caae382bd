"""Two commits' engines side by side, in one run: the same in-process load benchmark
(``benchmarks/engine_concurrency.py``, which uses only the public API) against each commit's package,
alternating commit by commit, round by round. Prints tokens/s of each and the ratio NEW / OLD per setting.

    .venv/bin/python benchmarks/ab_commits.py OLD NEW [--rounds 2] [--json OUT] -- [engine_concurrency args]

OLD and NEW are git revisions; ``.`` is the working tree. Each revision other than ``.`` is checked out
into a temporary git worktree (removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def checkout(rev: str, tmp: str) -> str:
    if rev == ".":
        return ROOT
    path = os.path.join(tmp, rev.replace("/", "_"))
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", path, rev], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def run_one(src: str, args: list[str], tmp: str) -> list[dict]:
    out = os.path.join(tmp, "run.json")
    env = dict(os.environ, PYTHONPATH=src)
    subprocess.run([sys.executable, os.path.join(HERE, "engine_concurrency.py"), "--json", out, *args], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    with open(out) as fh:
        return json.load(fh)["runs"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", dest="json_out", default=None)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a, rest = ap.parse_args(argv[:cut]), argv[cut + 1:]  # after "--": engine_concurrency.py's arguments
    tmp = tempfile.mkdtemp(prefix="ab-")
    made = []
    try:
        srcs = {}
        for name, rev in (("old", a.old), ("new", a.new)):
            srcs[name] = checkout(rev, tmp)
            if srcs[name] != ROOT:
                made.append(srcs[name])
        runs = []
        for r in range(a.rounds):
            for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                for row in run_one(srcs[name], rest, tmp):
                    row.update(commit=name, round=r)
                    runs.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        for path in made:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", path], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    by: dict = {}
    for row in runs:
        by.setdefault((row["speculate"], row["concurrency"], row["commit"]), []).append(row["tokens_per_s"])
    summary = {}
    for (sp, c, name), vals in sorted(by.items()):
        if name != "new":
            continue
        old = by[(sp, c, "old")]
        summary[f"speculate={sp} C={c}"] = {"old_tokens_per_s": old, "new_tokens_per_s": vals,
                                             "new/old": round(sum(vals) / sum(old), 3)}
    print(json.dumps(summary, indent=1))
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump({"old": a.old, "new": a.new, "args": rest, "runs": runs, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
