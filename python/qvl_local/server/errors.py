"""The OpenAI-shaped error every failing request is answered with."""
from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from ..errors import QvlError

logger = logging.getLogger("qvl_local.server")


class APIError(Exception):
    """A request that fails, answered with an OpenAI-shaped error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def api_error_from(error: Exception) -> APIError:
    """The answer to an exception raised while preparing or running a request."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, (QvlError, ValueError)):  # bad media, a malformed chat, a setting out of range
        return APIError(400, str(error), code="invalid_request")
    logger.error("request failed", exc_info=error)
    return APIError(500, f"generation failed: {type(error).__name__}")
