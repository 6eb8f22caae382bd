"""Optional parts of aspd-local and the packages they need (the extras of ``pip install 'aspd-local[...]'``).

The core install runs GGUF models: the engine, the Python API, ``run``, ``bench``, ``setup`` (the default
model is built with numpy and gguf). A command that needs more checks for its packages first and says,
in one line, which extra brings them.
"""

from __future__ import annotations

import importlib.util

from .errors import AspdLocalError

# extra -> the modules it brings (import names), as pyproject.toml lists them
EXTRAS = {
    "server": ("fastapi", "uvicorn"),
    "ui": ("gradio",),
    "convert": ("torch",),  # only for pickled .bin checkpoints; safetensors are read with numpy
    "train": ("torch", "transformers", "peft", "accelerate", "safetensors"),
}


class MissingExtraError(AspdLocalError):
    """A command needs packages of an extra that is not installed."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require(extra: str, what: str) -> None:
    """Raise ``MissingExtraError`` (one line, with the install command) unless ``extra`` is installed.
    ``what``: the command or feature that needs it, for the message."""
    gone = missing(extra)
    if gone:
        raise MissingExtraError(f"{what} needs {', '.join(gone)}, which the core install leaves out: "
                                f"pip install 'aspd-local[{extra}]'")
