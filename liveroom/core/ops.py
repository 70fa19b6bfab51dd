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
from liveroom.core.moderation import Moderation
from liveroom.core.rules import clean_text, normalise
from liveroom.core.session import Session
from liveroom.errors import BAD_FIELD, BLOCKED, FORBIDDEN, NO_SUCH_COMMENT, SOLD_OUT, UNKNOWN_OP, ReplyError, refusal
from liveroom.protocol import events
from liveroom.protocol import frames as F

SOLD_OUT_REFUSAL = refusal(SOLD_OUT)  # one instance, never raised: answer_now hands it back

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
        self.moderation = Moderation(cfg, broker)
        self._handlers: dict[type, Callable[[Session, Any], Awaitable[Result]]] = {
            F.Comment: self.comment,
            F.Like: self.like,
            F.Pin: self.pin,
            F.Notice: self.notice,
            F.Mute: self.mute,
            F.DeleteComment: self.delete_comment,
            F.Kick: self.kick,
            F.Ban: self.ban,
            F.Report: self.report,
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

    def answer_now(self, s: Session, op: F.Op) -> ReplyError | None:
        """Ops this hub answers without I/O, before any task is made for them: a buy of a
        sale it knows is sold out (core/soldout.py) gets its `sold_out` refusal here. Returned,
        not raised: after a sell-out this runs for every tap, thousands a second."""
        if op.__class__ is F.Buy and self.sales.sold_out_here(s, op):
            return SOLD_OUT_REFUSAL
        return None

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
        shadow = False
        if not s.is_host:  # the host's own comments are not filtered
            text, shadow = await self._filter(s.room, text)
        event = events.comment(s.user(), text, now_ms())
        if s.is_host:
            event["host"] = True  # never sampled out; viewers may style it
        if shadow:
            event["shadow"] = True  # core/batch.py: only its author is sent it
        room = self.cfg.room
        # the allowance is counted over all hubs, in room_comment.lua: one bucket per user
        # the normalised text lets room_comment.lua enter the author in an open keyword draw
        seq, _ = await self.broker.publish_comment(
            s.room, events.pack(event), s.identity.id, room.comment_rate, room.comment_burst,
            normalise(text), s.identity.name, op.key,
        )  # fmt: skip
        return {"seq": seq}

    async def like(self, s: Session, op: F.Like) -> Result:
        self.hub.add_likes(s.room, op.n)
        return None

    async def pin(self, s: Session, op: F.Pin) -> Result:
        value = msgpack.packb(op.product) if op.product is not None else b""
        seq, _ = await self.broker.publish_event(
            s.room, events.pack(events.pin(op.product)), "pinned", value, "pin", (s.identity.id, op.key)
        )
        return {"seq": seq}

    async def notice(self, s: Session, op: F.Notice) -> Result:
        text = clean_text(op.text, 2000)
        seq, _ = await self.broker.publish_event(s.room, events.pack(events.notice(text)), op="notice", idem=(s.identity.id, op.key))
        return {"seq": seq}

    async def mute(self, s: Session, op: F.Mute) -> Result:
        """Replies `until` (ms, -1 forever, 0 unmuted) and `step` (the ladder step taken
        with `escalate`, else 0): additions."""
        return await self.moderation.mute(s.room, op.user, op.seconds, op.escalate)

    async def delete_comment(self, s: Session, op: F.DeleteComment) -> Result:
        seq, _ = await self.broker.publish_event(s.room, events.pack(events.comment_deleted(op.seq)))
        return {"seq": seq}

    # -- moderation --------------------------------------------------------------------------

    async def kick(self, s: Session, op: F.Kick) -> Result:
        """The user's sockets in the room, on every hub, get `bye` `kicked` (room_bye.lua
        publishes a control message each hub acts on); it may come back."""
        await self.broker.bye(s.room, op.user, "kicked")
        return None

    async def ban(self, s: Session, op: F.Ban) -> Result:
        """Like kick with `bye` `banned`, and its handshakes are refused 403 `banned` while
        the ban lasts (seconds 0 lifts it, -1 forever)."""
        if op.seconds == 0:
            await self.broker.bye(s.room, op.user, "", 0)
        else:
            until = -1 if op.seconds < 0 else now_ms() + op.seconds * 1000
            await self.broker.bye(s.room, op.user, "banned", until)
        return None

    async def _filter(self, room: str, text: str) -> tuple[str, bool]:
        """The comment through the room's word filter: refused `blocked`, masked, or kept
        for its author alone (shadow). (text to publish, shadow)."""
        f, action = await self.moderation.room_filter(room)
        if not f:
            return text, False
        matches = f.find(text)
        if not matches:
            return text, False
        if action == "mask":
            return f.mask(text, matches), False
        if action == "shadow":
            return text, True
        raise refusal(BLOCKED)

    async def report(self, s: Session, op: F.Report) -> Result:
        await self.moderation.report(s, op.seq, op.reason)
        return None

    async def resolve(self, s: Session, seq: int, body: dict[str, Any]) -> Result:
        """POST .../reports/{seq}/resolve: dismiss | delete | mute (seconds, or escalate) |
        ban (seconds, default forever); the comment leaves the reports list."""
        action = body.get("action")
        if action not in ("dismiss", "delete", "mute", "ban"):
            raise ReplyError(BAD_FIELD, "action: dismiss, delete, mute or ban")
        reported = await self.broker.report_of(s.room, seq)
        if reported is None:
            raise ReplyError(NO_SUCH_COMMENT, "no reports for that comment")
        user = (msgpack.unpackb(reported[1])["user"] or {}).get("id") if reported[1] else None
        rest = {k: v for k, v in body.items() if k != "action"}
        out: dict[str, Any] = {"action": action}
        if action == "delete":
            out["seq"] = (await self.delete_comment(s, F.DeleteComment(seq)) or {}).get("seq")
        elif action == "mute" and user:
            out.update(await self.handle(s, F.parse_body("mute", {**rest, "user": user})) or {})
        elif action == "ban" and user:
            await self.handle(s, F.parse_body("ban", {"seconds": -1, **rest, "user": user}))
        await self.broker.report_close(s.room, seq)
        return out
