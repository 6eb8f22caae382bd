"""Where the data of the default model lives in the repository."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "models" / "aspd-gemma3-270m" / "data"
# the independent evaluation set (issue 13): never a training prompt (aspd_local/data/overlap.py)
INDEPENDENT = ROOT / "benchmarks" / "independent_prompts.jsonl"
INDEPENDENT_2 = ROOT / "benchmarks" / "independent_prompts_2.jsonl"  # the second set, written later
INDEPENDENT_3 = ROOT / "benchmarks" / "independent_prompts_3.jsonl"  # the third, for the next shipping decision
INDEPENDENT_SETS = (INDEPENDENT, INDEPENDENT_2, INDEPENDENT_3)

TRAIN_PROMPTS = "prompts_train.jsonl"
EVAL_PROMPTS = "prompts_eval.jsonl"
EXTRA_PROMPTS = "prompts_train_extra.jsonl"
MORE_PROMPTS = "prompts_train_more.jsonl"  # issue 13: many phrasings, counts 2..7
SERIAL_PROMPTS = "prompts_train_serial.jsonl"  # serial prompts that look like lists (prompts.looks_list_prompts)
PAIRED_PROMPTS = "prompts_train_paired.jsonl"  # their list-style twins on the same topics (prompts.paired_list_prompts)
# every prompt answered whole, in this order
TRAIN_PROMPT_FILES = (TRAIN_PROMPTS, EXTRA_PROMPTS, MORE_PROMPTS, SERIAL_PROMPTS, PAIRED_PROMPTS)
# multi-part prompts composed of a frame and generic parts (data/parts.py), answered only part by part
PARTS_PROMPTS = "prompts_train_parts.jsonl"
ANSWERS = "answers.jsonl"
ANSWERS_BY_PARTS = "answers_parts.jsonl"  # multi-part prompts answered part by part (data/parts.py)
ANSWERS_LISTS = "answers_lists.jsonl"  # short lists of answers.jsonl finished item by item (data/lists.py)
TRAIN = "train.jsonl"
STATS = "stats.json"
REPORT = "report.md"
