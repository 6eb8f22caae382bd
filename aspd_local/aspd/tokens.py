"""The six ASPD control tokens of a model: from GGUF metadata or an explicit mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import AspdFormatError

ROLES = ("title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close")
SUPPORTED_POSITION_MODES = ("max_para",)
DEFAULT_SEPARATOR = ": "


@dataclass(frozen=True)
class AspdTokens:
    """Ids of the six control tokens (docs/format.md section 1) and the title separator."""

    title_open: int
    title_close: int
    para_open: int
    para_close: int
    branch_open: int
    branch_close: int
    separator: str = DEFAULT_SEPARATOR

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(getattr(self, r) for r in ROLES)

    def __post_init__(self):
        if len(set(self.ids)) != 6:
            raise AspdFormatError(f"the six ASPD token ids must be distinct, got {self.ids}")

    @classmethod
    def from_metadata(cls, meta) -> "AspdTokens | None":
        """Read ``aspd.*`` keys via ``meta(key) -> str | None``. None when the model has no ASPD metadata."""
        if meta("aspd.version") is None and meta("aspd.token.title_open") is None:
            return None
        version = meta("aspd.version")
        if version is not None and version.strip() != "1":
            raise AspdFormatError(f"unsupported aspd.version {version} (this engine serves version 1)")
        mode = meta("aspd.position_mode") or "max_para"
        if mode not in SUPPORTED_POSITION_MODES:
            raise AspdFormatError(
                f"aspd.position_mode '{mode}' cannot be served on llama.cpp (positions of a sequence must stay "
                f"consecutive); supported: {', '.join(SUPPORTED_POSITION_MODES)}"
            )
        ids = {}
        for role in ROLES:
            raw = meta(f"aspd.token.{role}")
            if raw is None:
                raise AspdFormatError(f"GGUF has ASPD metadata but no aspd.token.{role}")
            try:
                ids[role] = int(raw)
            except ValueError:
                raise AspdFormatError(f"aspd.token.{role} is not an integer: {raw!r}") from None
        sep = meta("aspd.title_separator")
        return cls(**ids, separator=DEFAULT_SEPARATOR if sep is None else sep)

    @classmethod
    def from_mapping(cls, mapping, resolve=None, separator: str = DEFAULT_SEPARATOR) -> "AspdTokens":
        """Build from a role->id/text mapping, a 6-item sequence in ROLES order, or a comma-separated string.

        Token texts such as ``<unused0>`` are turned into ids with ``resolve(text) -> int | None``.
        """
        if isinstance(mapping, str):
            mapping = [p.strip() for p in mapping.split(",") if p.strip()]
        if isinstance(mapping, Mapping):
            unknown = set(mapping) - set(ROLES)
            if unknown:
                raise AspdFormatError(f"unknown ASPD roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
            missing = [r for r in ROLES if r not in mapping]
            if missing:
                raise AspdFormatError(f"ASPD token mapping lacks {', '.join(missing)}")
            items = [mapping[r] for r in ROLES]
        elif isinstance(mapping, Sequence):
            items = list(mapping)
            if len(items) != 6:
                raise AspdFormatError(f"an ASPD token mapping needs 6 tokens ({', '.join(ROLES)}), got {len(items)}")
        else:
            raise AspdFormatError(f"cannot read an ASPD token mapping from {type(mapping).__name__}")
        ids = []
        for role, item in zip(ROLES, items):
            if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
                ids.append(int(item))
                continue
            tid = resolve(item) if resolve else None
            if tid is None:
                raise AspdFormatError(f"token {item!r} for {role} is not a single vocabulary entry of this model")
            ids.append(tid)
        return cls(*ids, separator=separator)

    def validate_against(self, n_vocab: int) -> None:
        bad = [i for i in self.ids if not 0 <= i < n_vocab]
        if bad:
            raise AspdFormatError(f"ASPD token ids {bad} are outside the vocabulary (size {n_vocab})")
