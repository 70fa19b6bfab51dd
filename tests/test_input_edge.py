"""Client strings are checked at the edge: one bad value is refused alone (`bad_field`) and
never fails other users' ops batched with it on the way to Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, Awaitable, Callable

import aiohttp
import jwt
import msgpack

from liveroom.redis_local import RedisProcess
from tests.support import SECRET, AppHub, Client, HubProcess, t, token


def room() -> str:
    return "edge" + uuid.uuid4().hex[:8]


async def test_lone_surrogate_flood_hurts_nobody_else(app_hub: Callable[..., Awaitable[AppHub]]) -> None:
    """A viewer looping `buy` with key "\\ud800" (JSON codec) while 20 users comment and 20
    buy: nobody else gets `internal`, the hub logs no traceback, the attacker gets
    `bad_field` and then `bye abuse` (frame rate at its default)."""
    h = await app_hub(LIVEROOM_COMMENT_RATE="0", LIVEROOM_VIEWER_COMMENT_CAP="0", LIVEROOM_FRAME_RATE="20")
    r_ = room()
    host = await Client.connect(h.base, r_, token("shop", role="host", rooms=[r_]))
    r = await host.call("sale_create", sku="S1", title="Jacket", price=100, stock=1000, limit=1)
    assert r["ok"], r
    sale = r["sale"]
    commenters = [await Client.connect(h.base, r_, token(f"c{i}")) for i in range(20)]
    buyers = [await Client.connect(h.base, r_, token(f"b{i}")) for i in range(20)]
    attacker = await Client.connect(h.base, r_, token("mallory"), codec="json")
    # the raw frame: json.dumps would escape it the same way, "\ud800" on the wire
    bad = '{"t":"buy","id":%d,"sale":"%s","key":"\\ud800"}'
    stop = asyncio.Event()

    async def attack() -> None:
        """At 20 frames/s, the default frame rate (never `rate_limited`), until the hub
        cuts the attacker off (or the test gives up)."""
        i = 0
        while not stop.is_set() and not attacker.closed.is_set():
            i += 1
            try:
                await attacker.ws.send_str(bad % (i, sale))
            except (ConnectionError, RuntimeError):
                return
            await asyncio.sleep(0.05)  # the attack's pace, not a wait

    async def comment(c: Client) -> list[dict[str, Any]]:
        return [await c.call("comment", text=f"hello {i}") for i in range(20)]

    async def buy(c: Client, i: int) -> dict[str, Any]:
        return await c.call("buy", sale=sale, qty=1, key=f"k{i}")

    try:
        attack_task = asyncio.create_task(attack())
        await attacker.wait_for(lambda: 1 in attacker.replies, what="the attacker's first reply")
        results = await asyncio.gather(
            *(comment(c) for c in commenters), *(buy(c, i) for i, c in enumerate(buyers))
        )
        replies = [r for rs in results[:20] for r in rs] + list(results[20:])  # type: ignore[arg-type]
        failed = [r["error"]["code"] for r in replies if not r["ok"]]
        assert failed == [], failed
        await asyncio.wait_for(attacker.closed.wait(), t(10))  # strikes: 20, regrowing 1/s
        await attack_task
        codes = {f["error"]["code"] for f in attacker.frames if f["t"] == "reply" and not f["ok"]}
        assert codes <= {"bad_field", "rate_limited"} and "bad_field" in codes, codes
        assert attacker.last_frame("bye") == {"t": "bye", "reason": "abuse", "reconnect": False}
        assert h.tracebacks() == []
    finally:
        stop.set()
        for c in (host, attacker, *commenters, *buyers):
            await c.close()


async def test_pipeline_command_that_cannot_be_packed_fails_alone(redis1: RedisProcess) -> None:
    """Commands batched with one that cannot be encoded are still sent and answered."""
    from redis.asyncio.connection import ConnectionPool

    from liveroom.broker.pipeline import AutoPipeline

    pool = ConnectionPool.from_url(redis1.url)
    pipe = AutoPipeline(pool, timeout_s=t(5))
    try:
        futs = [
            pipe.call("SET", "edge:a", "1"),
            pipe.call("SET", "edge:b", "\ud800"),
            pipe.call("SET", "edge:c", object()),
            pipe.call("GET", "edge:a"),
        ]
        res = await asyncio.gather(*futs, return_exceptions=True)
        assert res[0] is True or res[0] == b"OK", res
        assert isinstance(res[1], UnicodeEncodeError), res
        assert isinstance(res[2], TypeError), res
        assert res[3] == b"1", res
        # all of them bad: nothing is sent, each gets its own exception
        bad = await asyncio.gather(pipe.call("GET", "\udc80"), return_exceptions=True)
        assert isinstance(bad[0], UnicodeEncodeError)
    finally:
        await pipe.close()
        await pool.disconnect()


def _mp_str(raw: bytes) -> bytes:
    """A msgpack str (fixstr) carrying raw bytes, valid UTF-8 or not."""
    assert len(raw) < 32
    return bytes([0xA0 | len(raw)]) + raw


async def test_invalid_text_anywhere_is_bad_field(shared_hub: HubProcess) -> None:
    """Invalid UTF-8 (msgpack) or a lone surrogate (JSON), in a field, a nested value or a
    map key, in a WebSocket frame, an HTTP body or a URL: `bad_field`, the frame's id kept."""
    since = len(shared_hub.log())
    r_ = room()
    mp = await Client.connect(shared_hub.base, r_, token("u"))
    js = await Client.connect(shared_hub.base, r_, token("j"), codec="json")
    try:
        bad = _mp_str(b"\xed\xa0\x80")  # a UTF-8-encoded surrogate: not valid UTF-8
        # {"t":"comment","id":101,"text":<bad>}
        frames = [
            b"\x83" + _mp_str(b"t") + _mp_str(b"comment") + _mp_str(b"id") + b"\x65" + _mp_str(b"text") + bad,
            # {"t":"comment","id":102,"text":"ok",<bad>:1}: a bad key in an ignored field
            b"\x84" + _mp_str(b"t") + _mp_str(b"comment") + _mp_str(b"id") + b"\x66"
            + _mp_str(b"text") + _mp_str(b"ok") + bad + b"\x01",
            # {"t":"comment","id":103,"text":"ok","x":[{"y":<bad \xff>}]}: nested
            b"\x84" + _mp_str(b"t") + _mp_str(b"comment") + _mp_str(b"id") + b"\x67"
            + _mp_str(b"text") + _mp_str(b"ok") + _mp_str(b"x") + b"\x91\x81" + _mp_str(b"y") + _mp_str(b"\xff"),
        ]
        for f in frames:
            await mp.ws.send_bytes(f)
        await mp.wait_for(lambda: {101, 102, 103} <= set(mp.replies), what="3 replies")
        assert [mp.replies[i]["error"]["code"] for i in (101, 102, 103)] == ["bad_field"] * 3
        await js.ws.send_str('{"t":"comment","id":101,"text":"\\udc00 hi"}')
        await js.ws.send_str('{"t":"comment","id":102,"text":"hi","\\ud83d":1}')
        await js.ws.send_str('{"t":"like","id":103,"n":1,"x":{"y":["\\ud800"]}}')
        await js.wait_for(lambda: {101, 102, 103} <= set(js.replies), what="3 replies")
        assert [js.replies[i]["error"]["code"] for i in (101, 102, 103)] == ["bad_field"] * 3
        # a surrogate pair, as JSON escapes an emoji, is fine
        await js.ws.send_str('{"t":"comment","id":104,"text":"\\ud83d\\ude00 ok"}')
        await js.wait_for(lambda: 104 in js.replies, what="reply")
        assert js.replies[104]["ok"], js.replies[104]

        host = token("h", role="host", rooms=[r_])
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {host}"}) as s:
            for body in (b'{"text":"\\ud800"}', b'{"text":"ok","\\udfff":1}', b'{"text":"\xed\xa0\x80"}'):
                async with s.post(f"{shared_hub.base}/api/rooms/{r_}/notices", data=body) as resp:
                    assert resp.status == 400, body
                    assert (await resp.json())["error"]["code"] == "bad_field", body
            for path in ("%ED%A0%80", "s1%0A", "s%FF"):
                async with s.post(f"{shared_hub.base}/api/rooms/{r_}/sales/{path}/close") as resp:
                    assert resp.status == 400, path
                    assert (await resp.json())["error"]["code"] == "bad_field", path
                async with s.get(f"{shared_hub.base}/api/rooms/{r_}/sales/{path}") as resp:
                    assert resp.status == 400, path
        # a token whose sub is a lone surrogate (a backend passing a nickname through)
        weird = jwt.encode({"sub": "\ud800", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        async with aiohttp.ClientSession() as s:
            async with s.get(shared_hub.base + "/ws", params={"room": r_, "token": weird}) as resp:
                assert resp.status == 401
        await still_works(mp)
        assert "Traceback" not in shared_hub.log(since)
    finally:
        await mp.close()
        await js.close()


async def still_works(c: Client) -> None:
    r = await c.call("comment", text="still here")
    assert r["ok"], r


class StrictJsonClient(Client):
    """A JSON viewer that parses like a browser: NaN/Infinity in a frame fail the test."""

    def decode(self, data: bytes | str) -> dict[str, Any]:
        def refuse(c: str) -> Any:
            raise AssertionError(f"non-standard JSON constant {c} in a frame")

        return json.loads(data, parse_constant=refuse)  # type: ignore[no-any-return]


def _surrogate_mp(obj: Any) -> bytes:
    """msgpack with a lone surrogate packed as its (invalid) UTF-8 bytes, as a client could."""
    return msgpack.packb(obj, unicode_errors="surrogatepass")


async def test_host_values_that_json_cannot_carry_are_bad_field(shared_hub: HubProcess) -> None:
    """Host values no browser could take (bytes keys, NaN, Infinity, 1e400, huge integers,
    lone surrogates, too deep, too big), over msgpack, JSON and HTTP: each `bad_field` (HTTP
    400); a JSON and a msgpack viewer then get the next good pin and notice, every JSON frame
    parses strictly, a late JSON viewer joins, the hub logs no traceback."""
    since = len(shared_hub.log())
    r_ = room()
    tok = token("h", role="host", rooms=[r_])
    host_mp = await Client.connect(shared_hub.base, r_, tok)
    host_js = await Client.connect(shared_hub.base, r_, tok, codec="json")
    viewer_js = await StrictJsonClient.connect(shared_hub.base, r_, token("vj"), codec="json")
    viewer_mp = await Client.connect(shared_hub.base, r_, token("vm"))
    try:
        deep: Any = 1
        for _ in range(10):
            deep = {"k": deep}
        mp_bad = [
            {"t": "pin", "product": {"sku": "A", "spec": {b"color": "red"}}},
            {"t": "pin", "product": {"sku": "A", "price": float("nan")}},
            {"t": "pin", "product": {"sku": "A", "price": float("inf")}},
            {"t": "pin", "product": {"sku": "A", "price": 2**63}},
            {"t": "pin", "product": {"sku": "A", "title": "\ud800"}},
            {"t": "pin", "product": {"sku": "A", "blob": b"\x00\x01"}},
            {"t": "pin", "product": deep},
            {"t": "pin", "product": {"sku": "A", "text": "x" * 5000}},
            {"t": "sale_create", "sku": "A", "title": "\udc80", "price": 1, "stock": 1, "limit": 1},
            {"t": "sale_create", "sku": "A", "title": 2**64 - 1, "price": 1, "stock": 1, "limit": 1},
            {"t": "mute", "user": "\ud800", "seconds": 10},
            {"t": "mute", "user": 2**64 - 1, "seconds": 10},
            {"t": "notice", "text": "\ud800"},
        ]
        for i, f in enumerate(mp_bad):
            await host_mp.ws.send_bytes(_surrogate_mp({**f, "id": 1000 + i}))
        await host_mp.wait_for(lambda: all(1000 + i in host_mp.replies for i in range(len(mp_bad))), what="replies")
        codes = [host_mp.replies[1000 + i].get("error", {}).get("code") for i in range(len(mp_bad))]
        assert codes == ["bad_field"] * len(mp_bad), codes

        js_bad = [
            '{"t":"pin","product":{"sku":"A","price":NaN}}',
            '{"t":"pin","product":{"sku":"A","price":Infinity}}',
            '{"t":"pin","product":{"sku":"A","price":[-Infinity]}}',
            '{"t":"pin","product":{"sku":"A","price":1e400}}',
            '{"t":"pin","product":{"sku":"A","price":100000000000000000000000000000}}',
            '{"t":"pin","product":{"sku":"A","title":"\\ud800"}}',
            '{"t":"pin","product":{"sku":"A","\\udfff":1}}',
            '{"t":"sale_create","sku":"A","title":"\\ud800","price":1,"stock":1,"limit":1}',
            '{"t":"mute","user":"\\udc00","seconds":10}',
            '{"t":"mute","user":100000000000000000000000000000,"seconds":10}',
        ]
        for i, f in enumerate(js_bad):
            await host_js.ws.send_str(f[:-1] + f',"id":{1000 + i}}}')
        await host_js.wait_for(lambda: all(1000 + i in host_js.replies for i in range(len(js_bad))), what="replies")
        codes = [host_js.replies[1000 + i].get("error", {}).get("code") for i in range(len(js_bad))]
        assert codes == ["bad_field"] * len(js_bad), codes

        http_bad = [
            ("pin", b'{"product":{"sku":"A","price":NaN}}'),
            ("pin", b'{"product":{"sku":"A","price":-Infinity}}'),
            ("pin", b'{"product":{"sku":"A","price":1e999}}'),
            ("pin", b'{"product":{"sku":"A","price":100000000000000000000000000000}}'),
            ("pin", b'{"product":{"sku":"A","title":"\\ud800"}}'),
            ("pin", b'{"product":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}}'),
            ("sales", b'{"sku":"A","title":"\\ud800","price":1,"stock":1,"limit":1}'),
            ("sales", b'{"sku":"A","title":"T","price":NaN,"stock":1,"limit":1}'),
            ("mutes", b'{"user":"\\ud800","seconds":10}'),
            ("notices", b'{"text":"\\udfff"}'),
        ]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tok}"}) as s:
            for path, body in http_bad:
                async with s.post(f"{shared_hub.base}/api/rooms/{r_}/{path}", data=body) as resp:
                    assert resp.status == 400, (path, body, await resp.text())
                    err = (await resp.json())["error"]
                    assert err["code"] == "bad_field" and err["message"], (path, body)
            good = {"sku": "A1", "title": "羽绒服", "price": 39900, "spec": {"size": ["M", "L"]}}
            async with s.post(f"{shared_hub.base}/api/rooms/{r_}/pin", json={"product": good}) as resp:
                assert resp.status == 200, await resp.text()

        r = await host_js.call("notice", text="after the bad ones")
        assert r["ok"], r
        for v in (viewer_js, viewer_mp):
            await v.wait_for(lambda v=v: len(v.of_type("notice")) == 1, what="notice")
            assert [e["product"] for e in v.of_type("pin")] == [good]
        late = await StrictJsonClient.connect(shared_hub.base, r_, token("late"), codec="json")
        assert late.welcome["state"]["pinned"] == good
        await late.close()
        assert not viewer_js.closed.is_set() and not viewer_mp.closed.is_set()
        assert "Traceback" not in shared_hub.log(since)
    finally:
        for c in (host_mp, host_js, viewer_js, viewer_mp):
            await c.close()
