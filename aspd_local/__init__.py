"""aspd-local: a local LLM runtime on llama.cpp with ASPD serial-parallel decoding."""

import logging as _logging

_logging.getLogger("aspd_local").addHandler(_logging.NullHandler())

from .aspd.tokens import AspdTokens
from .chat import Message
from .decoding.hybrid import Caps, Mode
from .engine import ChatSession, Engine, EngineConfig
from .errors import (AspdFormatError, AspdLocalError, ChatTemplateError, ContextOverflowError, DecodeError,
                     ModelLoadError)
from .events import (BlockEnd, BlockInfo, BlockStart, BranchDelta, BranchEnd, Done, Event, Queued, Result,
                     SerialDelta, Stats)
from .params import GenerationParams
from .scheduler import EngineClosedError, QueueFullError, Request
from .sampling import SamplingParams, StreamInfo

__version__ = "0.1.0"

__all__ = [
    "AspdFormatError", "AspdLocalError", "AspdTokens", "BlockEnd", "BlockInfo", "BlockStart", "BranchDelta",
    "BranchEnd", "Caps", "ChatSession", "ChatTemplateError", "ContextOverflowError", "DecodeError", "Done",
    "Engine", "EngineClosedError", "EngineConfig", "Event", "GenerationParams", "Message", "Mode", "ModelLoadError",
    "Queued", "QueueFullError", "Request", "Result", "SamplingParams", "SerialDelta", "Stats", "StreamInfo",
]
