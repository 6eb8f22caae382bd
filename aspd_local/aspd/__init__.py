"""The ASPD format: control tokens, the serial-parallel layout and the decoding grammar."""

from .layout import Layout, layout_of, render_tokens
from .tokens import ROLES, AspdTokens

__all__ = ["ROLES", "AspdTokens", "Layout", "layout_of", "render_tokens"]
