"""Read a SentencePiece ``tokenizer.model`` (a protobuf ModelProto) without the protobuf package.

Only what the converter needs: the pieces (text, score, type), the model type (BPE or Unigram) and
whether a space is prepended to the text (``add_dummy_prefix``). Field numbers follow
sentencepiece_model.proto: ModelProto.pieces = 1, .trainer_spec = 2, .normalizer_spec = 3;
SentencePiece.piece = 1, .score = 2, .type = 3; TrainerSpec.model_type = 3;
NormalizerSpec.name = 1, .precompiled_charsmap = 2, .add_dummy_prefix = 3, .remove_extra_whitespaces = 4.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConvertError

MODEL_UNIGRAM, MODEL_BPE = 1, 2


@dataclass
class SpmModel:
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)  # 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
    model_type: int = MODEL_UNIGRAM
    add_dummy_prefix: bool = True
    normalizer: str = "identity"
    has_charsmap: bool = False
    remove_extra_whitespaces: bool = True


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, i
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) of one message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            val, i = buf[i:i + size], i + size
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def read_spm_model(path: Path) -> SpmModel:
    try:
        data = Path(path).read_bytes()
        model = SpmModel()
        for num, wire, val in _fields(data):
            if num == 1 and wire == 2:
                piece, score, ptype = "", 0.0, 1
                for n2, w2, v2 in _fields(val):
                    if n2 == 1 and w2 == 2:
                        piece = v2.decode("utf-8")
                    elif n2 == 2 and w2 == 5:
                        score = struct.unpack("<f", v2)[0]
                    elif n2 == 3 and w2 == 0:
                        ptype = v2
                model.pieces.append(piece)
                model.scores.append(score)
                model.types.append(ptype)
            elif num == 2 and wire == 2:
                for n2, w2, v2 in _fields(val):
                    if n2 == 3 and w2 == 0:
                        model.model_type = v2
            elif num == 3 and wire == 2:
                for n2, w2, v2 in _fields(val):
                    if n2 == 1 and w2 == 2:
                        model.normalizer = v2.decode("utf-8")
                    elif n2 == 2 and w2 == 2:
                        model.has_charsmap = len(v2) > 0
                    elif n2 == 3 and w2 == 0:
                        model.add_dummy_prefix = bool(v2)
                    elif n2 == 4 and w2 == 0:
                        model.remove_extra_whitespaces = bool(v2)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error) as e:
        raise ConvertError(f"cannot read the SentencePiece model {path}: {e}") from None
    if not model.pieces:
        raise ConvertError(f"the SentencePiece model {path} has no pieces")
    return model
