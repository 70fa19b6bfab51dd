"""Milestones: "at 100,000 likes, a draw for a 10,000-yuan prize".

A host sets them per room (a kind, `likes` or `online`; `every` N or one `value`; a reward
text; optionally a draw). They live in Redis under the room's tag and are checked by the
script that moves the count (room_like.lua, presence_beat.lua: lib_milestones.lua), in the
same atomic step: a crossing fires one durable `milestone` event for the room, however many
hubs saw the count move. The hub whose change crossed it starts the milestone's draw.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Awaitable, Protocol

import msgpack

from liveroom.auth import Identity
from liveroom.broker.base import Broker
from liveroom.core.session import Session
from liveroom.errors import NO_SUCH_MILESTONE, refusal
from liveroom.protocol import events
from liveroom.protocol import frames as F

log = logging.getLogger(__name__)

MAX_PER_ROOM = 50  # each is checked on every change of its count
# who starts a milestone's draw: the room itself, acting as its host
MILESTONE_HOST = Identity("milestone", "milestone", "host", None)


class DrawStarter(Protocol):
    def start(self, s: Session, op: F.DrawStart) -> Awaitable[dict[str, Any]]: ...


class Milestones:
    def __init__(self, broker: Broker, draws: DrawStarter | None) -> None:
        self.broker = broker
        self.draws = draws

    async def set(self, s: Session, op: F.MilestoneSet) -> dict[str, Any]:
        if len(await self.broker.milestones(s.room)) >= MAX_PER_ROOM:
            raise refusal("bad_field", f"at most {MAX_PER_ROOM} milestones per room")
        mid = "m" + secrets.token_hex(5)
        record: dict[str, Any] = {
            "kind": op.kind,
            "reward": op.reward,
            "event": events.pack_open(events.milestone(op.kind, 0, op.reward), "value"),
        }
        if op.every:
            record["every"] = op.every
        else:
            record["value"] = op.value
        if op.draw is not None:
            record["draw"] = op.draw
        # Redis's cmsgpack reads no msgpack `bin`: the event body rides as a `str`
        await self.broker.milestone_set(s.room, mid, msgpack.packb(record, use_bin_type=False))
        return {"milestone": mid}

    async def remove(self, s: Session, op: F.MilestoneRemove) -> None:
        if not await self.broker.milestone_remove(s.room, op.milestone):
            raise refusal(NO_SUCH_MILESTONE)

    async def all(self, room: str) -> list[dict[str, Any]]:
        out = []
        for mid, rec in sorted((await self.broker.milestones(room)).items()):
            view = {"id": mid, "kind": rec["kind"], "reward": rec.get("reward"), "draw": rec.get("draw")}
            if "every" in rec:
                view["every"] = rec["every"]
            else:
                view["value"] = rec["value"]
                view["fired"] = bool(rec.get("fired"))
            out.append(view)
        return out

    async def start_draws(self, room: str, ids: list[str]) -> None:
        """The draws of the milestones this hub's count change crossed."""
        if not ids:
            return
        recs = await self.broker.milestones(room)
        for mid in ids:
            spec = recs.get(mid, {}).get("draw")
            if spec is None:
                continue
            if self.draws is None:
                log.warning("room %s: milestone %s would start a draw; draws are not available", room, mid)
                continue
            try:
                op = F.parse_body("draw_start", dict(spec))
                assert isinstance(op, F.DrawStart)
                await self.draws.start(Session(MILESTONE_HOST, room, "host"), op)
            except Exception as exc:  # e.g. a draw already open: the milestone still fired
                log.warning("room %s: milestone %s could not start its draw: %s", room, mid, exc)
