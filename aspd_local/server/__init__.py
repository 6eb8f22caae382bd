"""The OpenAI-compatible local server (``python -m aspd_local serve``); see docs/server.md."""

from .app import create_app, model_id_of
from .background import BackgroundServer, listen_socket
from .schemas import Defaults

__all__ = ["BackgroundServer", "Defaults", "create_app", "listen_socket", "model_id_of"]
