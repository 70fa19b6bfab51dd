"""What core needs from the outside, as Protocols: the viewers it writes to and the
counters it keeps. The broker's side is `broker/base.py`. Core imports neither aiohttp,
redis nor prometheus_client: a test can drive it with plain objects."""

from __future__ import annotations

from typing import Protocol

from liveroom.core.session import Session
from liveroom.protocol.codec import Codec

Wire = tuple[Codec, int]  # (codec, deflate window bits or 0): viewers sharing a wire share bytes


class Viewer(Protocol):
    """What the hub needs of a connection (implemented by web/connection.py)."""

    user_id: str
    session: Session  # who, for a fresh `welcome` after a reset
    codec: Codec
    wire: Wire

    def send(self, data: bytes, essential: bool, comments: int = 0) -> None:
        """Queue one complete WebSocket frame; never blocks. `essential` frames carry
        events a viewer must not miss (anything durable but comments). `comments`: how
        many comments the frame carries or counts (a slow connection that skips it owes the
        viewer that many in a later `dropped`)."""

    def kick(self, reason: str) -> None:
        """`bye` `reason` and close, on the next loop iteration (moderation: kick, ban)."""


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Level(Protocol):
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...


class HubMetrics(Protocol):
    """The hub's counters (liveroom/metrics.py has them all, for Prometheus)."""

    @property
    def viewers(self) -> Level: ...
    @property
    def rooms(self) -> Level: ...
    @property
    def events_in(self) -> Count: ...
    @property
    def batches(self) -> Count: ...
    @property
    def encodes(self) -> Count: ...
    @property
    def deliveries(self) -> Count: ...
    @property
    def sampled_out(self) -> Count: ...
    @property
    def repairs(self) -> Count: ...
    @property
    def resets(self) -> Count: ...
    @property
    def dropped_events(self) -> Count: ...
