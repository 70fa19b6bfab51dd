"""Who is acting, in which room: the caller of every op, over WebSocket or HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from liveroom.auth import Identity


@dataclass(slots=True)
class Session:
    """Who is acting, in which room, with which role there."""

    identity: Identity
    room: str
    role: str  # viewer | host | admin, in this room

    @property
    def is_host(self) -> bool:
        return self.role in ("host", "admin")

    def user(self) -> dict[str, str]:
        return {"id": self.identity.id, "name": self.identity.name}

    def welcome_user(self) -> dict[str, str]:
        """The `user` of a `welcome`: who the server took the client for."""
        return {"id": self.identity.id, "name": self.identity.name, "role": self.role}
