"""Errors the proxy itself produces, in OpenAI's shape so clients parse them.

OpenAI SDKs read ``{"error": {"message", "type", "code"}}``; answering in that
shape means a client sees "no route" or "upstream timeout" as a normal API error
instead of a JSON decoding failure.
"""

from __future__ import annotations

import json

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    500: "internal_error",
    502: "upstream_error",
    504: "upstream_error",
}


class ProxyError(Exception):
    """An error answered by LinguaGate (not relayed from the upstream)."""

    def __init__(
        self, status: int, message: str, *, type: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "api_error")
        self.code = code

    @property
    def kind(self) -> str:
        """Short error kind for records and logs (never user data)."""
        return self.code or self.type

    def body(self) -> bytes:
        payload = {"error": {"message": self.message, "type": self.type, "code": self.code}}
        return json.dumps(payload).encode()


def bad_request(message: str, code: str = "invalid_request") -> ProxyError:
    return ProxyError(400, message, code=code)
