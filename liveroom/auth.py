"""JWT (HS256) to an Identity. Several secrets may be valid at once, for rotation."""

from __future__ import annotations

import re
import secrets as _secrets
import time
import warnings
from dataclasses import dataclass

import jwt

from liveroom.core.rules import clean_line
from liveroom.errors import BAD_TOKEN, Refused

ROLES = ("viewer", "host", "shop", "admin")
# user ids go into Redis keys and fields, log lines and every viewer's frames: a safe set only
SUB_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")  # used with fullmatch
NAME_MAX = 64  # characters of a display name, after cleaning


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    name: str
    role: str  # viewer | host | shop | admin
    rooms: tuple[str, ...] | None  # None: not restricted
    anonymous: bool = False
    exp: float | None = None  # the token's expiry (Unix seconds); an open socket ends then

    def expired(self, now: float) -> bool:
        return self.exp is not None and now >= self.exp

    def is_shop_of(self, room: str) -> bool:
        """May confirm and cancel the room's orders: `admin`, or `shop` for the rooms its
        token lists (a shop token without `rooms` is the shop backend of every room)."""
        if self.role == "admin":
            return True
        return self.role == "shop" and (self.rooms is None or room in self.rooms)

    def is_host_of(self, room: str) -> bool:
        if self.role == "admin":
            return True
        return self.role == "host" and self.rooms is not None and room in self.rooms

    def role_in(self, room: str) -> str:
        """The role this identity has in `room` (a host token acts as host only in its rooms)."""
        if self.role == "admin":
            return "admin"
        if self.is_host_of(room):
            return "host"
        return "viewer"

    def may_enter(self, room: str) -> bool:
        return self.rooms is None or self.role == "admin" or room in self.rooms


def _text_ok(v: str) -> bool:
    """Valid UTF-8 (no lone surrogate from a "\ud800" in the token's JSON): the id and name
    go into Redis commands and every viewer's frames, where one would fail far from here."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Authenticator:
    def __init__(self, secrets: tuple[str, ...], anonymous: bool) -> None:
        self._secrets = secrets
        self.anonymous_allowed = anonymous

    def verify(self, token: str) -> Identity:
        """The identity in a token, or Refused(bad_token)."""
        if not self._secrets:
            raise Refused(BAD_TOKEN, "no token secrets are configured on this hub")
        last: Exception | None = None
        claims: dict[str, object] | None = None
        for secret in self._secrets:
            try:
                with warnings.catch_warnings():
                    # short dev secrets are the operator's choice; do not spam per request
                    warnings.simplefilter("ignore")
                    claims = jwt.decode(
                        token,
                        secret,
                        algorithms=["HS256"],
                        options={"require": ["sub", "exp"]},
                        leeway=5,
                    )
                break
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise Refused(BAD_TOKEN, f"invalid token: {exc}") from None
        if claims is None:
            raise Refused(BAD_TOKEN, f"invalid token: {last}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not SUB_RE.fullmatch(sub):
            raise Refused(BAD_TOKEN, "sub: 1-128 characters of A-Z a-z 0-9 _ . : @ -")
        name = claims.get("name", sub)
        if not isinstance(name, str) or not _text_ok(name):
            raise Refused(BAD_TOKEN, "name: must be a string")
        # shown to every viewer: one clean line (like comment text), else the user id
        name = clean_line(name, NAME_MAX) or sub
        role = claims.get("role", "viewer")
        if role not in ROLES:
            raise Refused(BAD_TOKEN, f"role: one of {', '.join(ROLES)}")
        rooms = claims.get("rooms")
        if rooms is not None and not (isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)):
            raise Refused(BAD_TOKEN, "rooms: must be a list of room ids")
        exp = claims.get("exp")
        return Identity(
            sub,
            name,
            str(role),
            tuple(rooms) if rooms is not None else None,
            exp=float(exp) if isinstance(exp, (int, float)) else None,
        )

    def anonymous(self) -> Identity:
        uid = "anon:" + _secrets.token_hex(6)
        return Identity(uid, "guest", "viewer", None, anonymous=True)


def make_token(
    secret: str,
    sub: str,
    *,
    name: str | None = None,
    role: str = "viewer",
    rooms: list[str] | None = None,
    ttl_s: int = 3600,
) -> str:
    """A signed token; for tests, benchmarks and `liveroom token`."""
    claims: dict[str, object] = {"sub": sub, "role": role, "exp": int(time.time()) + ttl_s}
    if name is not None:
        claims["name"] = name
    if rooms is not None:
        claims["rooms"] = rooms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm="HS256")
