"""The web interface: JSON API, live stream and dashboard (see ``docs/api.md``).

``create_app`` builds the app, ``serve`` runs it in the caller's event loop (``s0pcm run`` with
the logger, ``s0pcm serve`` without); ``set_password`` and ``new_token`` are what ``s0pcm
passwd`` and ``s0pcm token`` call.
"""

from __future__ import annotations

from .app import create_app
from .auth import new_token, set_password
from .server import bind, serve

__all__ = ["bind", "create_app", "new_token", "serve", "set_password"]
