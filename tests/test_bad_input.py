"""Bad input gets the PROTOCOL.md code, loses nothing, and never hurts the hub or others."""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from typing import Awaitable, Callable

import aiohttp
import jwt
import msgpack
import pytest

from liveroom.redis_local import RedisProcess
from tests.support import SECRET, AppHub, Client, HubProcess, eventually, t, token

StartAppHub = Callable[..., Awaitable[AppHub]]


def _hs512(claims: dict[str, object]) -> str:
    """Signed with the hub's own secret but another algorithm: refused by the pin alone.
    (PyJWT warns that this secret is short for HS512; that is the point here.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, SECRET, algorithm="HS512")


def room() -> str:
    return "bad" + uuid.uuid4().hex[:8]


async def still_works(c: Client) -> None:
    r = await c.call("comment", text="still here")
    assert r["ok"], r


async def test_garbage_frames_get_codes_and_the_connection_stays(shared_hub: HubProcess) -> None:
    """Undecodable, non-map, unknown op, wrong types: each answered, socket still usable."""
    c = await Client.connect(shared_hub.base, room(), token("u"))
    try:
        await c.ws.send_bytes(b"\xc1\xff\x00garbage")
        await c.ws.send_bytes(msgpack.packb([1, 2, 3]))
        await c.ws.send_str("text in a msgpack connection")
        await c.ws.send_bytes(msgpack.packb({"t": "comment", "id": "seven", "text": "x"}))
        await c.ws.send_bytes(msgpack.packb({"no_t": 1}))
        await c.wait_for(lambda: len([f for f in c.frames if f["t"] == "error"]) == 5, what="5 errors")
        codes = [f["error"]["code"] for f in c.frames if f["t"] == "error"]
        assert codes == ["bad_frame", "bad_frame", "bad_frame", "bad_field", "bad_field"]

        r = await c.call("dance")
        assert r == {"t": "reply", "id": r["id"], "ok": False, "error": r["error"]}
        assert r["error"]["code"] == "unknown_op"
        r = await c.call("comment", text=12)
        assert r["error"]["code"] == "bad_field"
        r = await c.call("like", n="many")
        assert r["error"]["code"] == "bad_field"
        r = await c.call("like", n=True)
        assert r["error"]["code"] == "bad_field"
        r = await c.call("comment", text="   \u200b\x00 ")
        assert r["error"]["code"] == "empty"
        r = await c.call("comment", text="x" * 201)
        assert r["error"]["code"] == "too_long"
        await still_works(c)
        # the refused comments never reached the room: the only comment broadcast is the good
        # one (events are in seq order, so anything refused-but-published would come first)
        await c.wait_for(lambda: len(c.of_type("comment")) >= 1, what="the one good comment")
        assert [e["text"] for e in c.of_type("comment")] == ["still here"]
    finally:
        await c.close()


async def test_control_characters_are_stripped(shared_hub: HubProcess) -> None:
    """Bidi overrides, zero widths and control characters never reach other screens."""
    r_ = room()
    c = await Client.connect(shared_hub.base, r_, token("u"))
    try:
        r = await c.call("comment", text="he\u202ello\x07 \n world\u200b")
        assert r["ok"]
        await c.wait_for(lambda: len(c.of_type("comment")) == 1, what="comment")
        assert c.of_type("comment")[0]["text"] == "hello world"
    finally:
        await c.close()


async def test_json_codec_bad_json(shared_hub: HubProcess) -> None:
    """A JSON client sending broken JSON gets bad_frame and carries on."""
    c = await Client.connect(shared_hub.base, room(), token("u"), codec="json")
    try:
        await c.ws.send_str("{not json")
        await c.wait_for(lambda: any(f["t"] == "error" for f in c.frames), what="error")
        assert c.last_frame("error")["error"]["code"] == "bad_frame"
        await still_works(c)
    finally:
        await c.close()


async def test_oversized_frame_gets_bye_too_large(shared_hub: HubProcess) -> None:
    """A frame over max_frame_bytes: `bye too_large`, close 1009; others unaffected."""
    r_ = room()
    other = await Client.connect(shared_hub.base, r_, token("other"))
    c = await Client.connect(shared_hub.base, r_, token("u"))
    try:
        await c.ws.send_bytes(msgpack.packb({"t": "comment", "text": "x" * 20000}))
        await asyncio.wait_for(c.closed.wait(), t(5))
        bye = c.last_frame("bye")
        assert bye == {"t": "bye", "reason": "too_large", "reconnect": False}
        assert c.ws.close_code == 1009
        await still_works(other)
    finally:
        await c.close()
        await other.close()


async def test_garbage_flood_gets_bye_abuse(shared_hub: HubProcess) -> None:
    """A client that keeps sending garbage is cut off with `bye abuse` (1008)."""
    r_ = room()
    other = await Client.connect(shared_hub.base, r_, token("other"))
    c = await Client.connect(shared_hub.base, r_, token("u"))
    try:
        for _ in range(60):
            if c.closed.is_set():
                break
            try:
                await c.ws.send_bytes(b"\xc1")
            except (ConnectionError, RuntimeError):
                break
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert c.last_frame("bye")["reason"] == "abuse"
        assert c.ws.close_code == 1008
        await still_works(other)
    finally:
        await c.close()
        await other.close()


async def test_rate_limits(app_hub: StartAppHub) -> None:
    """Comments over the per-user rate and frames over the per-socket rate: rate_limited."""
    h = await app_hub(LIVEROOM_COMMENT_RATE="1", LIVEROOM_FRAME_RATE="0")
    c = await Client.connect(h.base, room(), token("u"))
    try:
        results = [await c.call("comment", text=f"n{i}") for i in range(8)]
        codes = [r["error"]["code"] if not r["ok"] else "ok" for r in results]
        assert codes[:5] == ["ok"] * 5  # the burst
        assert "rate_limited" in codes[5:]
    finally:
        await c.close()
    h2 = await app_hub(LIVEROOM_FRAME_RATE="5", LIVEROOM_COMMENT_RATE="0")
    c = await Client.connect(h2.base, room(), token("u"))
    try:
        for i in range(45):
            await c.send({"t": "like", "id": i + 1, "n": 1})
        await c.wait_for(lambda: len(c.replies) == 45, what="45 replies")
        codes = {r["error"]["code"] for r in c.replies.values() if not r["ok"]}
        assert codes == {"rate_limited"}
        assert not c.closed.is_set()
    finally:
        await c.close()


async def test_comment_rate_is_per_user_over_all_hubs(
    start_hub: Callable[..., HubProcess], redis1: RedisProcess
) -> None:
    """A user with a socket on each of two hubs gets one allowance (burst 5), not two."""
    env = {"LIVEROOM_REDIS": redis1.url, "LIVEROOM_COMMENT_RATE": "0.5", "LIVEROOM_FRAME_RATE": "0"}
    h1, h2 = start_hub(**env), start_hub(**env)
    r_ = room()
    a = await Client.connect(h1.base, r_, token("spammer"))
    b = await Client.connect(h2.base, r_, token("spammer"))
    try:
        results = []
        for i in range(6):
            results.append(await a.call("comment", text=f"a{i}"))
            results.append(await b.call("comment", text=f"b{i}"))
        codes = [r["error"]["code"] if not r["ok"] else "ok" for r in results]
        assert codes.count("ok") == 5, codes
        assert set(codes) == {"ok", "rate_limited"}
        # someone else in the room is not affected
        other = await Client.connect(h2.base, r_, token("someone"))
        assert (await other.call("comment", text="hi"))["ok"]
        await other.close()
    finally:
        await a.close()
        await b.close()


async def test_roles_and_anonymous(shared_hub: HubProcess) -> None:
    """Anonymous viewers watch and like but cannot comment; viewers cannot do host ops."""
    r_ = room()
    anon = await Client.connect(shared_hub.base, r_, None)
    viewer = await Client.connect(shared_hub.base, r_, token("v"))
    host = await Client.connect(shared_hub.base, r_, token("h", role="host", rooms=[r_]))
    other_host = await Client.connect(shared_hub.base, r_, token("h2", role="host", rooms=[r_, "elsewhere"]))
    try:
        assert anon.welcome["user"]["role"] == "viewer"
        r = await anon.call("comment", text="hi")
        assert r["error"]["code"] == "forbidden"
        r = await anon.call("like", n=2)
        assert r["ok"]
        r = await viewer.call("notice", text="I am the host now")
        assert r["error"]["code"] == "forbidden"
        r = await viewer.call("pin", product={"sku": "x"})
        assert r["error"]["code"] == "forbidden"
        r = await host.call("notice", text="Welcome!")
        assert r["ok"]
        r = await host.call("pin", product={"sku": "A1", "title": "Shirt", "price": 9900})
        assert r["ok"]
        for c in (anon, viewer):
            await c.wait_for(lambda c=c: len(c.of_type("pin")) == 1, what="pin")
        assert viewer.of_type("notice")[0]["text"] == "Welcome!"
        late = await Client.connect(shared_hub.base, r_, token("late"))
        assert late.welcome["state"]["pinned"] == {"sku": "A1", "title": "Shirt", "price": 9900}
        await late.close()
        assert other_host.welcome["user"]["role"] == "host"
    finally:
        for c in (anon, viewer, host, other_host):
            await c.close()


async def test_mute_and_delete(shared_hub: HubProcess) -> None:
    """A muted user's comments are refused with `muted`; a deleted comment is announced."""
    r_ = room()
    host = await Client.connect(shared_hub.base, r_, token("h", role="host", rooms=[r_]))
    troll = await Client.connect(shared_hub.base, r_, token("troll"))
    try:
        r = await troll.call("comment", text="buy my stuff")
        assert r["ok"]
        bad_seq = r["seq"]
        assert (await host.call("mute", user="troll", seconds=60))["ok"]
        r = await troll.call("comment", text="again")
        assert r["error"]["code"] == "muted"
        assert (await host.call("delete_comment", seq=bad_seq))["ok"]
        await troll.wait_for(lambda: len(troll.of_type("comment_deleted")) == 1, what="deletion")
        assert troll.of_type("comment_deleted")[0]["comment"] == bad_seq
        assert (await host.call("mute", user="troll", seconds=0))["ok"]
        assert (await troll.call("comment", text="sorry"))["ok"]
    finally:
        await host.close()
        await troll.close()


@pytest.mark.parametrize(
    "query, status, code",
    [
        ({"room": "bad room!"}, 400, "bad_room"),
        ({"room": "x" * 65}, 400, "bad_room"),
        ({"room": "ok", "token": "not-a-jwt"}, 401, "bad_token"),
        ({"room": "ok", "token": jwt.encode({"sub": "u", "exp": int(time.time()) - 60}, SECRET)}, 401, "bad_token"),
        ({"room": "ok", "token": jwt.encode({"sub": "u", "exp": 2**40}, "another-secret-" * 3)}, 401, "bad_token"),
        ({"room": "ok", "token": jwt.encode({"sub": "u"}, SECRET)}, 401, "bad_token"),
        ({"room": "ok", "token": _hs512({"sub": "u", "exp": 2**40})}, 401, "bad_token"),
        ({"room": "ok", "token": token("u", rooms=["other"])}, 403, "forbidden"),
        ({"room": "ok", "codec": "xml"}, 400, "bad_field"),
    ],
)
async def test_refused_before_upgrade(app_hub: StartAppHub, query: dict[str, str], status: int, code: str) -> None:
    """Bad room or token: refused with the HTTP status and JSON body of PROTOCOL.md."""
    hub = await app_hub()
    async with aiohttp.ClientSession() as s:
        async with s.get(hub.base + "/ws", params=query, headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert r.status == status
            body = await r.json()
            assert body["error"]["code"] == code
            assert body["error"]["message"]


async def test_token_required_without_anonymous(app_hub: StartAppHub) -> None:
    """With anonymous viewers off, a missing token is 401 bad_token."""
    h = await app_hub(LIVEROOM_ANONYMOUS="0")
    async with aiohttp.ClientSession() as s:
        async with s.get(h.base + "/ws", params={"room": "r"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "bad_token"


async def test_secret_rotation(app_hub: StartAppHub) -> None:
    """Tokens signed with either configured secret are accepted."""
    old = "old-secret-0123456789abcdef0123456789"
    h = await app_hub(LIVEROOM_SECRETS=f"{SECRET},{old}")
    tok = jwt.encode({"sub": "olduser", "exp": int(time.time()) + 60}, old, algorithm="HS256")
    c = await Client.connect(h.base, room(), tok)
    assert c.welcome["user"]["id"] == "olduser"
    await c.close()
    c = await Client.connect(h.base, room(), token("newuser"))  # the first secret still works
    assert c.welcome["user"]["id"] == "newuser"
    await c.close()


async def test_connections_per_ip_are_capped(app_hub: StartAppHub) -> None:
    """Over LIVEROOM_MAX_CONN_PER_IP a new socket is refused 503 overloaded; a freed slot
    is usable again."""
    h = await app_hub(LIVEROOM_MAX_CONN_PER_IP="2")
    r_ = room()
    a = await Client.connect(h.base, r_, token("a"))
    b = await Client.connect(h.base, r_, token("b"))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(h.base + "/ws", params={"room": r_, "token": token("c")}) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "overloaded"
        await a.close()

        async def admitted() -> bool:
            """The hub forgets a closed socket a moment after the client's close: retry."""
            try:
                c = await Client.connect(h.base, r_, token("c"))
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503, exc
                return False
            await c.close()
            return True

        await eventually(admitted, what="the freed slot")
    finally:
        await b.close()
