"""The ASPD data pipeline (issue 4): prompts, the base model's own answers, extraction of parallel
segments, validation, and training rows (docs/format.md sections 2-4)."""
