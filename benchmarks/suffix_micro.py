"""Micro-benchmark of the suffix index and proposer with a global index of a million tokens.

The corpus is real text: Python's standard library sources, tokenized with the model's tokenizer, one
sequence per file (code is what a local assistant edits all day; its token statistics -- frequent
indentation and punctuation tokens with tens of thousands of occurrences -- are the hard case for
the matcher). Reports:

- build: indexing the whole corpus at once (what loading the on-disk cache does), and saving/loading it;
- insert: adding one answer to the global index (after every request), and one token to a request's
  index (after every accepted token);
- evict: dropping the oldest 10% (a rebuild);
- propose: one proposal (global index + a 2,000-token request index) for contexts taken from files
  not in the index (new text: few long matches) and from files in it (repeated text);
- memory: the index's arrays, and the process's resident memory growth while building it.

    .venv/bin/python benchmarks/suffix_micro.py [--tokens 1000000] [--json docs/bench/suffix-micro.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import sysconfig
import tempfile
import time

import numpy as np

from aspd_local.llama.model import Model, ModelParams
from aspd_local.models import base_model_path
from aspd_local.suffix.cache import load_index, save_index
from aspd_local.suffix.index import TokenIndex
from aspd_local.suffix.proposer import SuffixProposer


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def corpus_files() -> list[str]:
    root = sysconfig.get_paths()["stdlib"]
    out = []
    for d, _, names in sorted(os.walk(root)):
        if "site-packages" in d or "test" in d.split(os.sep):
            continue
        out += [os.path.join(d, n) for n in sorted(names) if n.endswith(".py")]
    return out


def tokenize_files(model: Model, files: list[str], budget: int) -> list[list[int]]:
    seqs, total = [], 0
    for path in files:
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue
        toks = model.tokenize(text[:20000], add_special=False, parse_special=False)
        if len(toks) < 50:
            continue
        seqs.append(toks)
        total += len(toks)
        if total >= budget:
            break
    return seqs


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def stats_us(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median_us": round(1e6 * statistics.median(xs), 2), "p90_us": round(1e6 * xs[int(0.9 * (len(xs) - 1))], 2),
            "max_us": round(1e6 * xs[-1], 2), "n": len(xs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", help="GGUF file whose tokenizer to use (default: the default model)")
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--proposals", type=int, default=400)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)
    rng = random.Random(0)

    model = Model(args.model or str(base_model_path()), ModelParams(n_gpu_layers=0))
    print("tokenizing the corpus ...", file=sys.stderr)
    files = corpus_files()
    rng.shuffle(files)
    held_out = tokenize_files(model, files[:40], 10**9)
    seqs = tokenize_files(model, files[40:], args.tokens)
    n_tokens = sum(len(s) for s in seqs)
    print(f"{len(seqs)} files, {n_tokens} tokens", file=sys.stderr)

    report: dict = {"corpus": {"files": len(seqs), "tokens": n_tokens, "source": "Python stdlib sources"}}

    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    index = TokenIndex.from_sequences(seqs)
    build_s = time.perf_counter() - t0
    rss1 = rss_mb()
    report["build"] = {"seconds": round(build_s, 3), "ns_per_token": round(1e9 * build_s / n_tokens, 1)}
    report["memory"] = {"index_bytes": index.nbytes(), "bytes_per_token": round(index.nbytes() / n_tokens, 2),
                        "rss_growth_mb": round(rss1 - rss0, 1), "distinct_tokens": len(index._where)}

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.npz")
        save_s = timed(lambda: save_index(index, path, model_key="k"), 3)
        load_s = timed(lambda: load_index(path, model_key="k", n_vocab=model.n_vocab), 3)
        report["disk"] = {"file_mb": round(os.path.getsize(path) / 2**20, 2),
                          "save_s": round(min(save_s), 3), "load_s": round(min(load_s), 3)}

    # insert: one answer into the global index (a copy, so the index stays as measured)
    answers = [s[:300] for s in held_out[:20]]
    work = TokenIndex.from_sequences(seqs)
    per_answer = timed(lambda: work.add_sequence(answers[rng.randrange(len(answers))]), 50)
    report["insert_answer"] = {**stats_us(per_answer), "tokens_per_answer": 300}
    request = TokenIndex()
    request.open_sequence(held_out[0][:2000])
    one = [held_out[1][i % len(held_out[1])] for i in range(2000)]
    it = iter(one)
    per_token = timed(lambda: request.extend((next(it),)), 2000)
    report["insert_token"] = stats_us(per_token)
    t0 = time.perf_counter()
    dropped = work.evict(max_tokens=int(0.9 * work.n_tokens))
    report["evict_10_percent"] = {"seconds": round(time.perf_counter() - t0, 3), "sequences_dropped": dropped}
    del work

    # propose: contexts from new text and from text in the index
    proposer = SuffixProposer(index, alpha=2.0, min_token_prob=0.1, max_depth=64)
    proposer.begin(held_out[2][:2000])
    for name, pool in (("new_text", held_out[3:]), ("repeated_text", seqs)):
        times, sizes, matched = [], [], 0
        for _ in range(args.proposals):
            s = pool[rng.randrange(len(pool))]
            end = rng.randrange(10, len(s))
            ctx = s[max(0, end - 64):end]
            t0 = time.perf_counter()
            tree = proposer.propose(ctx, 32)
            times.append(time.perf_counter() - t0)
            if tree is not None:
                matched += 1
                sizes.append(len(tree))
        report[f"propose_{name}"] = {**stats_us(times), "with_tree": matched,
                                     "mean_nodes": round(float(np.mean(sizes)), 2) if sizes else 0.0}
    report["decode_step_reference_ms"] = {
        "note": "one llama_decode of 1 token, Gemma 3 270M on this 2-core machine (docs/benchmarks.md)",
        "Q4_K_M": 13.6, "f16": 21.7}
    print(json.dumps(report, indent=2))
    if args.json_out:
        tmp = args.json_out + ".partial"
        with open(tmp, "w") as fh:
            json.dump(report, fh, indent=2)
        os.replace(tmp, args.json_out)
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
