"""The Gradio chat page (``python -m aspd_local ui``): branches shown live, side by side, then folded
into the answer. ``build_app`` makes the page over an engine, ``launch`` serves it (both import Gradio;
the state modules do not)."""

from .host import Conversation, EngineHost
from .view import AnswerView, Branch

__all__ = ["AnswerView", "Branch", "Conversation", "EngineHost", "build_app", "launch"]


def __getattr__(name):
    if name in ("build_app", "launch"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
