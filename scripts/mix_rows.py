"""Training rows for training a delta further: the rows of NEW that OLD does not have (by id and answer),
and a seeded sample of REPLAY rows the two share, so that the model keeps seeing what it learned.

    python scripts/mix_rows.py NEW.jsonl OLD.jsonl --replay N --out MIX.jsonl [--seed S]
        [--new-serial K --serial-seed S2]

OLD is the file the delta was trained on (e.g. ``git show REV:models/aspd-gemma3-270m/data/train.jsonl``).
``--new-serial K`` keeps only a seeded sample of K of the new rows without a parallel block (serial
answers), to set their share. The output keeps NEW's order; it prints how many rows of each kind it wrote.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from aspd_local.data.jsonl import DataFileError, read_jsonl, write_jsonl
from aspd_local.data.segments import has_block


def _key(row: dict) -> tuple[str, str]:
    """A row as trained on: its id and its answer's segments."""
    return row["id"], json.dumps(row.get("segments"), sort_keys=True)


def mix(new: list[dict], old: list[dict], replay: int, seed: int = 0, new_serial: int | None = None,
        serial_seed: int = 0) -> tuple[list[dict], int, int]:
    """(rows, new ones, replayed ones)."""
    seen = {_key(r) for r in old}
    shared = [i for i, r in enumerate(new) if _key(r) in seen]
    in_old = set(shared)
    fresh = [i for i in range(len(new)) if i not in in_old]
    if new_serial is not None:
        serial = [i for i in fresh if not has_block(new[i])]
        kept = set(random.Random(serial_seed).sample(serial, min(new_serial, len(serial))))
        fresh = [i for i in fresh if has_block(new[i]) or i in kept]
    picked = set(random.Random(seed).sample(shared, min(replay, len(shared))))
    keep = sorted(set(fresh) | picked)
    return [new[i] for i in keep], len(fresh), len(picked)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("new")
    p.add_argument("old")
    p.add_argument("--replay", type=int, default=0, help="rows both files have to keep (a seeded sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--new-serial", type=int, default=None, metavar="K",
                   help="keep a seeded sample of K of the new rows without a block (default: all)")
    p.add_argument("--serial-seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.replay < 0:
        p.error("--replay must be 0 or more")
    if a.new_serial is not None and a.new_serial < 0:
        p.error("--new-serial must be 0 or more")
    try:
        rows, n_new, n_old = mix(read_jsonl(a.new, ("id",)), read_jsonl(a.old, ("id",)), a.replay, a.seed,
                                   a.new_serial, a.serial_seed)
    except DataFileError as e:
        raise SystemExit(f"error: {e}") from None
    write_jsonl(a.out, rows)  # whole or not at all
    print(f"{len(rows)} rows -> {a.out}: {n_new} new, {n_old} replayed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
