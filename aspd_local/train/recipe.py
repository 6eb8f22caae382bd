"""The training recipe: every hyper-parameter of a run, recorded in checkpoints and in the manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

DEFAULT_ASPD_TOKENS = "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Recipe:
    epochs: float = 2.0
    lr: float = 2e-4  # LoRA matrices
    rows_lr: float = 1e-3  # the six control-token embedding rows
    weight_decay: float = 0.0
    warmup: float = 0.06  # share of the optimizer steps with a linear warm-up; then cosine to min_lr_ratio
    min_lr_ratio: float = 0.1
    batch_rows: int = 1  # rows per forward pass (padded to the longest)
    grad_accum: int = 8  # forward passes per optimizer step
    max_len: int = 512  # longer rows are skipped
    parallel_repeat: int = 1  # rows with a parallel block appear this many times per epoch
    # rows with a block of at least wide_branches branches appear wide_repeat times as often again: the
    # base model rarely writes 5 to 7 items, so few rows teach a title list that long
    wide_repeat: int = 1
    wide_branches: int = 5
    # loss weight of a block's count decisions (the token after each <|/title|>: another title or <|para|>),
    # 1 for every other token; the loss is still divided by the number of targets
    decision_weight: float = 1.0
    # rows with a parallel block also appear once as plain serial text (their rendered answer), so that
    # with the control tokens masked (`ar` mode) the model writes the same answer in the same style
    serial_copies: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    max_grad_norm: float = 1.0
    # compute dtype of the frozen base (LoRA and rows keep float32 masters); "auto": see compute_dtype
    dtype: str = "auto"
    seed: int = 0
    aspd_tokens: str = DEFAULT_ASPD_TOKENS
    loss_chunk: int = 256
    # a delta directory to start from (its LoRA matrices and control rows) instead of a fresh adapter;
    # "" starts fresh
    init: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "lora_targets" in kw:
            kw["lora_targets"] = tuple(kw["lora_targets"])
        return cls(**kw)

    # what must not change when a run is resumed (the Trainer records the dtype "auto" resolved to)
    def fingerprint(self) -> dict:
        d = self.to_dict()
        d.pop("extra", None)
        return d


def compute_dtype(name: str) -> str:
    """The compute dtype a recipe's ``dtype`` stands for. "auto" is bfloat16 where the hardware multiplies
    it natively (a CUDA GPU, or a CPU with AVX512-BF16/AMX as oneDNN reports it) and float32 elsewhere:
    on an AVX2 CPU, torch's bfloat16 product of the loss gradient with the 262k-row output matrix ran 170
    times slower than float32 (docs/aspd-pipeline.md, section 5)."""
    if name != "auto":
        return name
    import torch

    fast = torch.cuda.is_available()
    try:
        fast = fast or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    return "bfloat16" if fast else "float32"
