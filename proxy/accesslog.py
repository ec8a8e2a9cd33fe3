"""One structured access-log line per request (key=value), never prompts or keys."""

from __future__ import annotations

import logging

logger = logging.getLogger("linguagate.access")


class AccessLog:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def log(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        ms: float,
        compression: str | None,
        request_id: str,
    ) -> None:
        if not self.enabled or not logger.isEnabledFor(logging.INFO):
            return
        logger.info(
            "method=%s path=%s route=%s status=%d ms=%.2f compression=%s request_id=%s",
            method,
            path,
            route or "-",
            status,
            ms,
            compression or "-",
            request_id,
        )
