"""Errors raised by aspd-local. Each carries a message meant for the user."""


class AspdLocalError(Exception):
    """Base class: something the user can act on, reported as one line."""


class ModelLoadError(AspdLocalError):
    """The model file is missing, not a GGUF, corrupt, or not loadable by llama.cpp."""


class ContextOverflowError(AspdLocalError):
    """The prompt (with the history) does not fit into the context window."""


class AspdFormatError(AspdLocalError):
    """The model's ASPD metadata or a token mapping cannot be served."""


class ChatTemplateError(AspdLocalError):
    """The chat template could not be applied to the messages."""


class DecodeError(AspdLocalError):
    """llama_decode failed for a reason other than a full context."""
