"""What each client op does, for the WebSocket and the HTTP API alike.

A handler takes the caller's Session and the parsed op, applies the room rules, calls the
broker, and returns the reply's result fields (or None), raising ReplyError to refuse.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import msgpack

from liveroom.broker.base import Broker
from liveroom.config import Config
from liveroom.core.hub import Hub
from liveroom.core.milestones import Milestones
from liveroom.core.rules import clean_text, normalise
from liveroom.core.session import Session
from liveroom.errors import FORBIDDEN, UNKNOWN_OP, ReplyError
from liveroom.protocol import events
from liveroom.protocol import frames as F

if TYPE_CHECKING:
    from liveroom.core.draws import Draws
    from liveroom.core.live import LiveSessions
    from liveroom.core.sales import Sales


def now_ms() -> int:
    return int(time.time() * 1000)


Result = dict[str, Any] | None


class Ops:
    def __init__(
        self, cfg: Config, hub: Hub, broker: Broker, sales: "Sales", milestones: Milestones, draws: "Draws | None" = None,
        live: "LiveSessions | None" = None,
    ) -> None:  # fmt: skip
        self.cfg = cfg
        self.hub = hub
        self.broker = broker
        self.sales = sales
        self._handlers: dict[type, Callable[[Session, Any], Awaitable[Result]]] = {
            F.Comment: self.comment,
            F.Like: self.like,
            F.Pin: self.pin,
            F.Notice: self.notice,
            F.Mute: self.mute,
            F.DeleteComment: self.delete_comment,
            F.Buy: sales.buy,
            F.SaleCreate: sales.create,
            F.SaleClose: sales.close,
            F.MilestoneSet: milestones.set,
            F.MilestoneRemove: milestones.remove,
        }
        if draws is not None:
            self._handlers[F.DrawStart] = draws.start
            self._handlers[F.JoinDraw] = draws.join
        if live is not None:
            self._handlers[F.LiveStart] = live.start
            self._handlers[F.LiveEnd] = live.end

    async def handle(self, s: Session, op: F.Op) -> Result:
        if isinstance(op, F.HOST_OPS) and not s.is_host:
            raise ReplyError(FORBIDDEN, "only the room's host may do this")
        handler = self._handlers.get(type(op))
        if handler is None:
            raise ReplyError(UNKNOWN_OP, f"{type(op).__name__} is not available on this hub yet")
        return await handler(s, op)

    async def comment(self, s: Session, op: F.Comment) -> Result:
        if s.identity.anonymous:
            raise ReplyError(FORBIDDEN, "sign in to comment")
        text = clean_text(op.text, self.cfg.room.comment_max_chars)
        event = events.comment(s.user(), text, now_ms())
        room = self.cfg.room
        # the allowance is counted over all hubs, in room_comment.lua: one bucket per user
        # the normalised text lets room_comment.lua enter the author in an open keyword draw
        seq, _ = await self.broker.publish_comment(
            s.room, events.pack(event), s.identity.id, room.comment_rate, room.comment_burst,
            normalise(text), s.identity.name,
        )  # fmt: skip
        return {"seq": seq}

    async def like(self, s: Session, op: F.Like) -> Result:
        self.hub.add_likes(s.room, op.n)
        return None

    async def pin(self, s: Session, op: F.Pin) -> Result:
        value = msgpack.packb(op.product) if op.product is not None else b""
        seq, _ = await self.broker.publish_event(s.room, events.pack(events.pin(op.product)), "pinned", value)
        return {"seq": seq}

    async def notice(self, s: Session, op: F.Notice) -> Result:
        text = clean_text(op.text, 2000)
        seq, _ = await self.broker.publish_event(s.room, events.pack(events.notice(text)))
        return {"seq": seq}

    async def mute(self, s: Session, op: F.Mute) -> Result:
        until = None if op.seconds == 0 else -1 if op.seconds < 0 else now_ms() + op.seconds * 1000
        await self.broker.mute(s.room, op.user, until)
        return None

    async def delete_comment(self, s: Session, op: F.DeleteComment) -> Result:
        seq, _ = await self.broker.publish_event(s.room, events.pack(events.comment_deleted(op.seq)))
        return {"seq": seq}
