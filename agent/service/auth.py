"""The service's own bearer token: when the variable ``service.api_key_env`` names is set, every
``/v1`` route wants ``Authorization: Bearer <token>``.

The token is read from the environment when the app is created, compared in constant time,
and never logged or echoed. It is not the model's key (``model.api_key_env``), which only the
service sends, upstream.
"""

from __future__ import annotations

import os
import secrets

from fastapi import Request

from agent.service.errors import ServiceError


class BearerToken:
    """A FastAPI dependency checking the token (a no-op when none is configured)."""

    def __init__(self, env_var: str) -> None:
        self.env_var = env_var
        self.token = os.environ.get(env_var) or None

    @property
    def enabled(self) -> bool:
        """Whether a token is required."""
        return self.token is not None

    async def __call__(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ServiceError(401, f"This service wants a bearer token (Authorization: Bearer <token>, the value of "
                                    f"${self.env_var} where it runs); the request has none.",
                               code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(given.strip().encode(), self.token.encode()):
            raise ServiceError(401, f"The bearer token is not this service's (${self.env_var} where it runs).",
                               code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
