"""Where the data of the default model lives in the repository."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "models" / "aspd-gemma3-270m" / "data"

TRAIN_PROMPTS = "prompts_train.jsonl"
EVAL_PROMPTS = "prompts_eval.jsonl"
EXTRA_PROMPTS = "prompts_train_extra.jsonl"
ANSWERS = "answers.jsonl"
TRAIN = "train.jsonl"
STATS = "stats.json"
REPORT = "report.md"
