"""Cheap attacks on a running hub, each with the refusal a user would expect: slow headers,
ping floods, anonymous socket floods, forged X-Forwarded-For, resume storms, like floods,
log floods; and /metrics kept off the public port when asked."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
import uuid
from typing import Callable

import aiohttp
import msgpack
import pytest

from liveroom.redis_local import RedisProcess, free_port
from tests.support import Client, HubProcess, eventually, t, token


def room() -> str:
    return "hard" + uuid.uuid4().hex[:8]


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=t(5)) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def ws_status(base: str, room_: str, tok: str | None, headers: dict[str, str] | None = None, **q: str) -> int:
    """The HTTP status of an upgrade attempt (101 when it was accepted)."""
    params = {"room": room_, **q}
    if tok:
        params["token"] = tok
    async with aiohttp.ClientSession() as s:
        try:
            ws = await s.ws_connect(base + "/ws", params=params, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def test_slow_headers_are_cut_off_and_real_users_still_get_in(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_HEADER_TIMEOUT_S="2", LIVEROOM_MAX_PENDING="20")
    dribblers = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", hub.port))
        s.sendall(b"GET /ws?room=x HTTP/1.1\r\nHost: a\r\n")
        dribblers.append(s)

    def alive() -> int:
        n = 0
        for s in dribblers:
            try:
                s.sendall(b"X")  # a byte now and then: a slowloris
                s.settimeout(0.001)
                if s.recv(1) == b"":
                    continue
            except (BlockingIOError, socket.timeout):
                pass
            except OSError:
                continue
            n += 1
        return n

    try:
        await eventually(lambda: alive() <= 20, timeout=3, what="pending sockets over the cap closed")
        assert status_of(hub.base + "/healthz") == 200  # the hub answers meanwhile
        c = await Client.connect(hub.base, room(), token("real"))
        await c.close()
        await eventually(lambda: alive() == 0, timeout=6, what="every dribbler closed by the header timeout")
    finally:
        for s in dribblers:
            s.close()


async def test_a_ping_flood_ends_in_bye_abuse(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url)  # default frame rate: 20/s, 20 strikes
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(hub.base + "/ws", params={"room": room(), "token": token("pinger")}, autoping=False)
        assert msgpack.unpackb((await ws.receive()).data)["t"] == "welcome"
        pongs, bye = 0, None
        for _ in range(2000):
            await ws.ping(b"x")
        deadline = time.monotonic() + t(5)
        while bye is None and time.monotonic() < deadline:
            msg = await ws.receive(timeout=t(5))
            if msg.type == aiohttp.WSMsgType.PONG:
                pongs += 1
            elif msg.type == aiohttp.WSMsgType.BINARY:
                f = msgpack.unpackb(msg.data)
                if f["t"] == "bye":
                    bye = f
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
        assert bye is not None and bye["reason"] == "abuse" and bye["reconnect"] is False
        assert pongs <= 100  # the burst, not one pong per ping


async def test_anonymous_sockets_per_address_and_forged_forwarded_for(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hub = start_hub(
        LIVEROOM_REDIS=redis1.url,
        LIVEROOM_ANONYMOUS="1",
        LIVEROOM_MAX_ANON_PER_IP="3",
        LIVEROOM_TRUST_FORWARDED="1",
        LIVEROOM_FORWARDED_HOPS="1",
    )
    r_ = room()
    held = []
    async with aiohttp.ClientSession() as s:
        try:
            for i in range(3):
                # the client writes the left of the header; our proxy appends what it saw
                fwd = {"X-Forwarded-For": f"10.0.0.{i}, 203.0.113.7"}
                held.append(await s.ws_connect(hub.base + "/ws", params={"room": r_}, headers=fwd))
            status = await ws_status(hub.base, r_, None, {"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
            assert status == 503  # a fourth anonymous socket from 203.0.113.7, whatever it forged
            assert await ws_status(hub.base, r_, token("signed-in"), {"X-Forwarded-For": "203.0.113.7"}) == 101
            assert await ws_status(hub.base, r_, None, {"X-Forwarded-For": "198.51.100.1"}) == 101
        finally:
            for ws in held:
                await ws.close()


async def test_resume_storms_are_refused_and_backlogs_come_in_chunks(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_RESUME_RATE="1", LIVEROOM_COMMENT_RATE="0", LIVEROOM_FRAME_RATE="0")
    r_ = room()
    host = await Client.connect(hub.base, r_, token("host", role="host", rooms=[r_]))
    try:
        for i in range(450):
            await host.send({"t": "notice", "text": f"n{i}"})
        await host.wait_for(lambda: len(host.of_type("notice")) == 450, what="450 notices")
        epoch = host.welcome["epoch"]
        back = await Client.connect(hub.base, r_, token("v"), since=0, epoch=epoch)
        await back.wait_for(lambda: len(back.of_type("notice")) == 450, what="the whole backlog")
        sizes = [len(f["events"]) for f in back.frames if f["t"] == "batch"]
        assert max(sizes) <= 200 and sum(sizes) == 450
        await back.close()
        codes = [await ws_status(hub.base, r_, token("v"), since="0", epoch=epoch) for _ in range(8)]
        assert 429 in codes and codes.count(101) <= 5  # 1/s with a 5 s burst (one already spent)
        assert await ws_status(hub.base, r_, token("v")) == 101  # a plain join is not a resume
    finally:
        await host.close()


async def test_likes_per_connection_are_capped(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_LIKE_RATE="10", LIVEROOM_FRAME_RATE="0")
    c = await Client.connect(hub.base, room(), token("tapper"))
    try:
        for _ in range(40):
            await c.send({"t": "like", "n": 50})  # 2,000 taps at once
        await c.wait_for(lambda: bool(c.of_type("likes")), what="a likes total")
        await asyncio.sleep(0.5)
        total = c.of_type("likes")[-1]["total"]
        assert 30 <= total <= 60  # the 3 s burst, and what a second of rate adds
    finally:
        await c.close()


async def test_metrics_on_an_internal_port_only(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    internal = free_port()
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_INTERNAL_PORT=str(internal))
    assert status_of(hub.base + "/metrics") == 404 and status_of(hub.base + "/readyz") == 404
    assert status_of(hub.base + "/healthz") == 200
    assert status_of(f"http://127.0.0.1:{internal}/metrics") == 200
    assert status_of(f"http://127.0.0.1:{internal}/readyz") == 200


@pytest.mark.parametrize("n", [300])
async def test_a_flood_of_malformed_requests_does_not_flood_the_log(
    n: int, start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url)
    secret = "eyJhbGciOiJIUzI1NiJ9.SECRET-PAYLOAD"
    started = time.monotonic()
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", hub.port)) as s:
            s.sendall(f"GET /ws HTTP/1.1\r\nAuthorization: Bearer {secret}\r\nbad header line\x01\r\n\r\n".encode())
            s.settimeout(t(2))
            try:
                s.recv(4096)
            except OSError:
                pass
    seconds = time.monotonic() - started
    await asyncio.sleep(0.2)
    log = hub.log()
    assert "SECRET-PAYLOAD" not in log
    assert log.count("Traceback") == 0
    assert log.count("bad request from a client") <= 5 * (int(seconds) + 2)
    assert status_of(hub.base + "/healthz") == 200


async def test_a_bad_entry_never_stops_the_order_reaper(start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    """A pending-orders entry that is not an order id of ours (written by anything else with
    Redis access, or by an older version) is skipped: the real unpaid order next to it still
    expires on time and its stock comes back."""
    import redis as redis_py

    from liveroom.broker import keys as K

    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_PAY_WINDOW_S="1", LIVEROOM_FRAME_RATE="0")
    r_ = room()
    host = await Client.connect(hub.base, r_, token("host", role="host", rooms=[r_]))
    try:
        sale = (await host.call("sale_create", sku="A", title="Hat", price=100, stock=3, limit=1))["sale"]
        bought = await host.call("buy", sale=sale, qty=1, key="k")
        assert bought["ok"] and bought["remaining"] == 2
        with redis_py.Redis.from_url(redis1.url) as r:
            r.zadd(K.room_keys(r_).pending, {"not-an-order\n": 0, "o1-x-s-1": 0})  # due first
            r.sadd(K.SALE_ROOMS, "demo\n")
        await host.wait_for(
            lambda: any(e["type"] == "stock" and e["remaining"] == 3 for e in host.events),
            timeout=8,
            what="the unpaid order expired and its unit back in stock",
        )
    finally:
        await host.close()


async def test_anonymous_viewers_of_one_address_hold_few_rooms(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_ANONYMOUS="1", LIVEROOM_MAX_ANON_ROOMS_PER_IP="3")
    rooms = [room() for _ in range(4)]
    async with aiohttp.ClientSession() as s:
        held = [await s.ws_connect(hub.base + "/ws", params={"room": r_}) for r_ in rooms[:3]]
        try:
            assert await ws_status(hub.base, rooms[3], None) == 503  # a fourth room
            assert await ws_status(hub.base, rooms[0], None) == 101  # more sockets in a room it holds
            assert await ws_status(hub.base, rooms[3], token("signed-in")) == 101
            await held[0].close()

            async def another_room_taken() -> bool:  # once the hub has seen the close
                return await ws_status(hub.base, rooms[3], None) == 101

            await eventually(another_room_taken, what="a room freed, another taken")
        finally:
            for ws in held:
                await ws.close()
