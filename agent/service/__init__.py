"""The inspection service (``python -m agent serve``): ``POST /v1/inspect``, an OpenAI-compatible
front door, the traces and the example crops over HTTP, and a page to try it (see :mod:`agent.service.app`)."""

from agent.service.app import create_app

__all__ = ["create_app"]
