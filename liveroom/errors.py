"""The few exception types of liveroom, and their one mapping to PROTOCOL.md codes.

    LiveroomError
    ├── ReplyError(code, message)     a frame or request refused: `reply`/`error` with the code
    │   └── Unavailable               Redis could not be reached or timed out ("unavailable")
    └── Refused(status, code)         refused before the WebSocket upgrade (HTTP status + code)

"Redis said no" (a script's refusal) is a ReplyError with its own code; "Redis could not be
reached" is Unavailable. They are never confused: a sale must not be reported sold out
because a shard is down.
"""

from __future__ import annotations

from typing import Final

# PROTOCOL.md error codes
BAD_FRAME: Final = "bad_frame"
UNKNOWN_OP: Final = "unknown_op"
BAD_FIELD: Final = "bad_field"
TOO_LARGE: Final = "too_large"
FORBIDDEN: Final = "forbidden"
RATE_LIMITED: Final = "rate_limited"
MUTED: Final = "muted"
TOO_LONG: Final = "too_long"
EMPTY: Final = "empty"
SOLD_OUT: Final = "sold_out"
LIMIT_REACHED: Final = "limit_reached"
NOT_STARTED: Final = "not_started"
ENDED: Final = "ended"
NO_SUCH_SALE: Final = "no_such_sale"
NO_SUCH_DRAW: Final = "no_such_draw"
DRAW_OPEN: Final = "draw_open"  # an addition: draw_start while the room has an open draw
NO_SUCH_ORDER: Final = "no_such_order"
NO_SUCH_MILESTONE: Final = "no_such_milestone"
NO_SUCH_ROOM: Final = "no_such_room"  # the room was never created (PUT /api/rooms/{room})
NO_SUCH_SESSION: Final = "no_such_session"  # an addition: not a live session of this room (or expired)
CLOSED: Final = "closed"
UNAVAILABLE: Final = "unavailable"
INTERNAL: Final = "internal"
# refusals before the upgrade
BAD_ROOM: Final = "bad_room"
BAD_TOKEN: Final = "bad_token"
BANNED: Final = "banned"
DRAINING: Final = "draining"
OVERLOADED: Final = "overloaded"
# moderation (v1.1)
BLOCKED: Final = "blocked"  # the comment matched the room's word filter (action refuse)
NO_SUCH_COMMENT: Final = "no_such_comment"  # an addition: report/resolve of a seq that is no comment

# HTTP status for a ReplyError answered over the HTTP API
HTTP_STATUS: Final[dict[str, int]] = {
    BAD_FRAME: 400,
    UNKNOWN_OP: 400,
    BAD_FIELD: 400,
    TOO_LARGE: 413,
    FORBIDDEN: 403,
    RATE_LIMITED: 429,
    MUTED: 403,
    TOO_LONG: 400,
    EMPTY: 400,
    SOLD_OUT: 409,
    LIMIT_REACHED: 409,
    NOT_STARTED: 409,
    ENDED: 409,
    NO_SUCH_SALE: 404,
    NO_SUCH_DRAW: 404,
    DRAW_OPEN: 409,
    NO_SUCH_ORDER: 404,
    NO_SUCH_MILESTONE: 404,
    NO_SUCH_ROOM: 404,
    NO_SUCH_SESSION: 404,
    CLOSED: 409,
    UNAVAILABLE: 503,
    INTERNAL: 500,
    BAD_ROOM: 400,
    BAD_TOKEN: 401,
    BANNED: 403,
    DRAINING: 503,
    OVERLOADED: 503,
    BLOCKED: 403,
    NO_SUCH_COMMENT: 404,
}

# WebSocket close codes (RFC 6455) used with `bye`
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_TRY_AGAIN: Final = 1013
CLOSE_TOKEN_EXPIRED: Final = 4001  # private-use range (RFC 6455 7.4.2): reconnect with a fresh token

# bye reason -> (close code, may the client reconnect)
BYE: Final[dict[str, tuple[int, bool]]] = {
    "draining": (CLOSE_GOING_AWAY, True),
    "kicked": (CLOSE_POLICY, False),
    "banned": (CLOSE_POLICY, False),
    "slow": (CLOSE_TRY_AGAIN, True),
    "too_large": (CLOSE_TOO_BIG, False),
    "abuse": (CLOSE_POLICY, False),
    "unavailable": (CLOSE_TRY_AGAIN, True),  # the room's Redis shard did not answer
    "expired": (CLOSE_TOKEN_EXPIRED, True),  # the token's `exp` passed while the socket was open
    "idle": (CLOSE_GOING_AWAY, True),  # silent for limits.idle_timeout_s, pongs included
    "resync": (CLOSE_TRY_AGAIN, True),  # missed events the hub could not make up: resume with `since`
}


# what a refusal says, by code (a script's refusals and the ops' own)
MESSAGES: Final[dict[str, str]] = {
    SOLD_OUT: "sold out",
    LIMIT_REACHED: "you have reached the per-person limit for this sale",
    NOT_STARTED: "the sale has not started yet",
    ENDED: "the sale has ended",
    CLOSED: "closed",
    NO_SUCH_SALE: "no such sale in this room",
    NO_SUCH_ORDER: "no such order",
    NO_SUCH_MILESTONE: "no such milestone in this room",
    NO_SUCH_ROOM: "no such room",
    NO_SUCH_SESSION: "no such live session in this room",
    NO_SUCH_DRAW: "no such draw in this room",
    DRAW_OPEN: "a draw is already open in this room; wait for its result",
    BAD_FIELD: "qty: over the per-person limit",  # the one bad_field a script gives
    RATE_LIMITED: "commenting too fast",
    MUTED: "muted",
    BLOCKED: "this comment is not allowed in this room",
}


def refusal(code: str, detail: str = "") -> "ReplyError":
    """The ReplyError for a refusal code, with the one message that code has."""
    message = MESSAGES.get(code, code.replace("_", " "))
    return ReplyError(code, f"{message} {detail}" if detail else message)


class LiveroomError(Exception):
    """Root of every error liveroom raises on purpose."""


class ReplyError(LiveroomError):
    """A refused frame or request. `code` is a PROTOCOL.md error code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code.replace("_", " ")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class Unavailable(ReplyError):
    """Redis (the shard holding the room) could not be reached or did not answer in time."""

    def __init__(self, message: str = "the room's data store did not answer") -> None:
        super().__init__(UNAVAILABLE, message)


class Refused(LiveroomError):
    """Refused before the WebSocket upgrade, answered as HTTP `status` with a JSON error."""

    def __init__(self, code: str, message: str = "", retry_ms: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = HTTP_STATUS.get(code, 400)
        self.message = message or code.replace("_", " ")
        self.retry_ms = retry_ms  # when to try again (the body's `retry_ms`, Retry-After)

    def as_body(self) -> dict[str, dict[str, str | int]]:
        err: dict[str, str | int] = {"code": self.code, "message": self.message}
        if self.retry_ms is not None:
            err["retry_ms"] = self.retry_ms
        return {"error": err}

    def headers(self) -> dict[str, str]:
        """Retry-After (whole seconds, rounded up) when the refusal says when to retry."""
        return {} if self.retry_ms is None else {"Retry-After": str(-(-self.retry_ms // 1000))}
