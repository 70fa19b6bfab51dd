"""Logging that an attacker cannot turn into a disk-filler or a token leak.

aiohttp logs every malformed request with a traceback and the start of the offending line
(which can be an Authorization header). A flood of them must not flood the log: after a
few a second they are counted, not written, and what is written names the error type only.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

BURST = 5  # records a second from aiohttp's server logger before they are only counted


class QuietClientErrors(logging.Filter):
    """For `aiohttp.server`: at most BURST records a second; a malformed request's record
    without its bytes or traceback (our own errors keep theirs); how many were held back is
    said with the next one written."""

    def __init__(self) -> None:
        super().__init__()
        self._second = 0
        self._written = 0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = int(time.monotonic())
        if now != self._second:
            self._second, self._written = now, 0
        if self._written >= BURST:
            self._held += 1
            return False
        self._written += 1
        exc = record.exc_info[1] if record.exc_info else None
        held = f" ({self._held} more not logged)" if self._held else ""
        self._held = 0
        if isinstance(exc, HttpProcessingError):  # the client's bytes: may hold a token
            record.msg = "bad request from a client: %s (details withheld)%s"
            record.args = (type(exc).__name__, held)
            record.exc_info = None
            record.exc_text = None
        elif held:
            record.msg = f"{record.msg}{held}"
        return True


def install() -> None:
    logging.getLogger("aiohttp.server").addFilter(QuietClientErrors())
