"""aspd-local: a local LLM runtime on llama.cpp with ASPD serial-parallel decoding."""

import logging as _logging
import os as _os
import sys as _sys

_logging.getLogger("aspd_local").addHandler(_logging.NullHandler())

# `python -m aspd_local train` / `aspd-local train`: idle OpenMP threads must sleep, not spin (on a shared
# 2-core machine spinning makes a training step 5-7x slower, measured). llama.cpp, imported just below,
# loads libgomp, which torch then shares and which reads OMP_WAIT_POLICY once, when it loads: so this has
# to happen here, before the engine is imported, not in the train command itself.
if _sys.argv[1:2] == ["train"]:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .aspd.tokens import AspdTokens
from .chat import Message
from .params import Caps, Mode
from .engine import ChatSession, Engine, EngineConfig
from .errors import (AspdFormatError, AspdLocalError, ChatTemplateError, ContextOverflowError, DecodeError,
                     ModelLoadError)
from .events import (BlockEnd, BlockInfo, BlockStart, BranchDelta, BranchEnd, Done, Event, Queued, Result,
                     SerialDelta, Stats)
from .params import GenerationParams
from .request import EngineClosedError, QueueFullError, Request
from .sampling import SamplingParams, StreamInfo

__version__ = "0.1.0"

__all__ = [
    "AspdFormatError", "AspdLocalError", "AspdTokens", "BlockEnd", "BlockInfo", "BlockStart", "BranchDelta",
    "BranchEnd", "Caps", "ChatSession", "ChatTemplateError", "ContextOverflowError", "DecodeError", "Done",
    "Engine", "EngineClosedError", "EngineConfig", "Event", "GenerationParams", "Message", "Mode", "ModelLoadError",
    "Queued", "QueueFullError", "Request", "Result", "SamplingParams", "SerialDelta", "Stats", "StreamInfo",
]
