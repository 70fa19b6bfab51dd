"""A room's batch for one tick, as bytes: the shared frame for every wire in use, and the
rare personal copies. `build` is pure (events and a sample in, frames out; no sockets, no
clock); `write` hands those bytes to the viewers.

The shared batch is encoded once per codec and wrapped once per wire (plain, or deflated
with a given window): every viewer on that wire gets those same bytes. A viewer whose own
comment fell out of the sample gets a personal copy of the batch with it put back, so
nobody's own comment disappears.

Moderation: a host's comment (`host: true`) is never sampled out (it goes in the shared
frame like a non-comment event). A shadowed comment (`shadow`: it matched a word filter
whose action is shadow) is kept out of the shared frame and put only into its author's
personal copy, without the flag: the shared bytes are still encoded once per codec, and
only the author (rare) costs an encode of their own.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from liveroom.core.ports import Viewer, Wire
from liveroom.protocol.codec import Codec, deflate_frame, encode, frame, ws_frame

Event = dict[str, Any]
# what an event that no codec can carry raises (a value no check refused: a bug)
UNENCODABLE = (TypeError, ValueError, OverflowError)


@dataclass(slots=True)
class Outgoing:
    frames: dict[Wire, bytes]  # the shared batch, one complete frame per wire
    personal: dict[str, dict[Codec, bytes]] = field(default_factory=dict)  # user -> codec -> frame
    essential: bool = False  # carries a durable event other than a comment
    dropped: int = 0  # comments left out of the shared sample
    encodes: int = 0
    comments: int = 0  # comments the shared frame carries or counts: what a viewer that skips it misses


def build(
    room_id: str,
    durable: list[Event],
    ephemeral: list[Event],
    pick: list[int] | None,
    wires: Iterable[Wire],
    present: Container[str],
) -> Outgoing:
    """The tick's frames. `pick`: indices of the comments in `durable` every viewer gets
    (None: all); `present`: users here, who get their own sampled-out comments back.
    Every frame is encoded before any is returned, so a failed encode sends nothing."""
    own: dict[str, list[Event]] = {}
    if any("shadow" in e for e in durable):
        for e in durable:
            if "shadow" in e and e["user"]["id"] in present:
                own.setdefault(e["user"]["id"], []).append(unflagged(e))
        durable = [e for e in durable if "shadow" not in e]
    shadowed = {user: len(mine) for user, mine in own.items()}
    comments = sampled(durable)
    if pick is None:
        shared, dropped = durable, 0
    else:
        keep = {id(comments[i]) for i in pick}
        shared = [e for e in durable if e["type"] != "comment" or "host" in e or id(e) in keep]
        dropped = len(comments) - len(pick)
        for e in comments:
            if id(e) not in keep and e["user"]["id"] in present:
                own.setdefault(e["user"]["id"], []).append(e)
    essential = any(e["type"] != "comment" for e in shared)
    batch: Event = {"t": "batch", "room": room_id, "events": shared + ephemeral}
    if dropped:
        batch["dropped"] = dropped
    wires = list(wires)
    if not shared and not ephemeral and not dropped:  # only shadowed comments: no shared frame
        out = Outgoing({w: b"" for w in wires})
        for user, mine in own.items():
            out.personal[user] = {codec: personal(room_id, [], mine, [], len(mine), codec) for codec, _ in wires}
        return out
    payloads = {codec: encode(batch, codec) for codec, _ in wires}
    carried = sum(1 for e in shared if e["type"] == "comment") + dropped
    out = Outgoing({}, essential=essential, dropped=dropped, encodes=len(payloads), comments=carried)
    for codec, wbits in wires:
        payload = payloads[codec]
        out.frames[(codec, wbits)] = deflate_frame(payload, codec.opcode, wbits) if wbits else ws_frame(payload, codec.opcode)
    for user, mine in own.items():
        left = dropped + shadowed.get(user, 0)  # personal() takes back one per event of `mine`
        out.personal[user] = {codec: personal(room_id, shared, mine, ephemeral, left, codec) for codec in payloads}
    return out


def sampled(durable: list[Event]) -> list[Event]:
    """The comments the per-viewer cap samples from: not the host's, not shadowed ones."""
    return [e for e in durable if e["type"] == "comment" and "host" not in e and "shadow" not in e]


def unflagged(e: Event) -> Event:
    """A shadowed comment as its author sees it: like any other."""
    return {k: v for k, v in e.items() if k != "shadow"}


def visible(events: list[Event], user: str) -> list[Event]:
    """Events of a backlog (resume, reset) as `user` may see them: others' shadowed
    comments left out, their own unflagged."""
    if not any("shadow" in e for e in events):
        return events
    return [unflagged(e) if "shadow" in e else e for e in events if "shadow" not in e or e["user"]["id"] == user]


def write(out: Outgoing, viewers: Mapping[Wire, Collection[Viewer]]) -> int:
    """The same bytes to every viewer of a wire, a personal copy where one exists: no
    encode and no copy per viewer. Returns how many viewers were written to."""
    sent = 0
    essential = out.essential
    n = out.comments  # a slow connection that skips the frame counts them as dropped
    for wire, group in viewers.items():
        data = out.frames.get(wire)
        if data is None:
            continue  # no viewer on this wire when the batch was built
        if out.personal:
            for v in group:
                mine = out.personal.get(v.user_id)
                if mine is not None:
                    v.send(mine[wire[0]], essential, n)
                    sent += 1
                elif data:  # b"": nothing for the others this tick (only shadowed comments)
                    v.send(data, essential, n)
                    sent += 1
        elif data:
            for v in group:
                v.send(data, essential, n)
            sent += len(group)
    return sent


BACKLOG_CHUNK = 200  # events per frame of a resume backlog


def backlog(room_id: str, events: list[Event], codec: Codec) -> list[bytes]:
    """A resuming viewer's missed events as batches of at most BACKLOG_CHUNK: no frame of
    unbounded size (a client's frame limit, the socket's outbox), the same order."""
    return [
        frame({"t": "batch", "room": room_id, "events": events[i : i + BACKLOG_CHUNK]}, codec)
        for i in range(0, len(events), BACKLOG_CHUNK)
    ]


def personal(
    room_id: str, shared: list[Event], mine: list[Event], ephemeral: list[Event], dropped: int, codec: Codec
) -> bytes:
    """The shared batch with this viewer's own sampled-out comments back in seq order."""
    events = sorted(shared + mine, key=lambda e: e.get("seq", 0)) + ephemeral
    batch: Event = {"t": "batch", "room": room_id, "events": events}
    if dropped - len(mine):
        batch["dropped"] = dropped - len(mine)
    return frame(batch, codec)


def unencodable(durable: list[Event]) -> list[tuple[Event, Codec, Exception]]:
    """The events one of the codecs cannot carry, to drop them alone."""
    bad: list[tuple[Event, Codec, Exception]] = []
    for e in durable:
        for codec in Codec:
            try:
                encode(e, codec)
            except UNENCODABLE as exc:
                bad.append((e, codec, exc))
                break
    return bad
