"""The web interface: JSON API, live stream and dashboard (see ``docs/api.md``).

``create_app`` builds the app, ``serve`` runs it in the caller's event loop;
``run_logger_with_web`` is ``s0pcm run`` (logger and web in one loop), ``serve_store`` is ``s0pcm
serve``; ``set_password`` and ``new_token`` are what ``s0pcm passwd`` and ``s0pcm token`` call.
"""

from __future__ import annotations

from .app import create_app
from .auth import new_token, set_password
from .context import effective_meters
from .server import bind, run_logger_with_web, serve, serve_store

__all__ = [
    "bind",
    "create_app",
    "effective_meters",
    "new_token",
    "run_logger_with_web",
    "serve",
    "serve_store",
    "set_password",
]
