"""Prometheus metrics of a hub.

With `--workers N` the workers share one port, so a scrape reaches any one of them: the
supervisor gives them a shared PROMETHEUS_MULTIPROC_DIR and every scrape reports the sum
over all workers (prometheus-client's multiprocess mode), not one worker's share.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class Children(dict[str, Any]):
    """A metric family's labelled children, made on first use: `.labels()` takes a lock and
    hashes on every call, and a client frame or an error reply is counted thousands of times
    a second (a plain dict lookup on every call after the first)."""

    def __init__(self, family: Any) -> None:
        super().__init__()
        self.family = family

    def __missing__(self, label: str) -> Any:
        child = self[label] = self.family.labels(label)
        return child


class Metrics:
    def __init__(self) -> None:
        r = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # values live in the shared directory; a scrape reads every worker's files
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry)
        else:
            self.registry = r
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        # gauges: summed over the running workers
        self.connections = Gauge(
            "liveroom_connections", "Open WebSocket connections", registry=r, multiprocess_mode="livesum"
        )
        self.viewers = Gauge("liveroom_viewers", "Viewers attached to rooms", registry=r, multiprocess_mode="livesum")
        self.rooms = Gauge("liveroom_rooms", "Rooms with local viewers", registry=r, multiprocess_mode="livesum")
        self.outbox_bytes = Gauge(  # set by the heartbeat sweep, each second: not on the fan-out path
            "liveroom_outbox_bytes",
            "Bytes waiting in the hub's socket write buffers (bounded by limits.hub_outbox_bytes)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.frames_in = Counter("liveroom_frames_in", "Client frames received", ["op"], registry=r)
        self.errors = Counter("liveroom_errors", "Error replies sent", ["code"], registry=r)
        self.byes = Counter("liveroom_byes", "Connections ended by the server", ["reason"], registry=r)
        self.refused = Counter("liveroom_refused", "Upgrades refused", ["code"], registry=r)
        self.events_in = Counter("liveroom_events_in", "Durable events received from Redis", registry=r)
        self.batches = Counter("liveroom_batches", "Room batches fanned out", registry=r)
        self.encodes = Counter("liveroom_batch_encodes", "Batch encodes (one per room, codec, tick)", registry=r)
        self.deliveries = Counter("liveroom_deliveries", "Batch frames written to sockets", registry=r)
        self.sampled_out = Counter("liveroom_sampled_out", "Comments not sent to a viewer (cap)", registry=r)
        self.slow_skips = Counter("liveroom_slow_skips", "Batches skipped for a slow viewer", registry=r)
        self.repairs = Counter("liveroom_repairs", "Seq gaps repaired from history", registry=r)
        self.resets = Counter(
            "liveroom_room_resets", "Rooms started over under a new epoch (their Redis data was lost)", registry=r
        )
        self.dropped_events = Counter(
            "liveroom_dropped_events", "Events that could not be encoded for viewers (a bug: see the log)", registry=r
        )
        self.op_seconds = Histogram(
            "liveroom_op_seconds",
            "Time to answer an op",
            ["op"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # a full collection stops the whole hub, ~5 us per connection it holds (it was 45 us
        # while aiohttp served the sockets, bench/gc_objects.py): a stall worth seeing
        self.gc_pause = Histogram(
            "liveroom_gc_pause_seconds",
            "Time the hub stood still in CPython's cycle collector",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self._frames_in = Children(self.frames_in)
        self._op_seconds = Children(self.op_seconds)
        self._errors = Children(self.errors)

    def watch_gc(self) -> Callable[[], None]:
        """Time every collection (gc.callbacks); returns the function that stops it."""
        children = [self.gc_pause.labels(str(g)) for g in range(3)]
        started = [0.0]
        clock = time.perf_counter

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = clock()
            else:
                children[info["generation"]].observe(clock() - started[0])

        gc.callbacks.append(on_gc)
        return lambda: gc.callbacks.remove(on_gc)

    def frame_in(self, op: str) -> None:
        self._frames_in[op].inc()

    def error(self, code: str) -> None:
        self._errors[code].inc()  # a refused buy of a sold-out sale: one per tap

    def op_time(self, op: str, seconds: float) -> None:
        self._op_seconds[op].observe(seconds)
