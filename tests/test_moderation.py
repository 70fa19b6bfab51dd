"""Moderation end to end: real Redis, two real hub processes, real sockets. A troll with a
socket on each hub is kicked and banned; the word filter; reports and their resolutions;
mutes up the escalation ladder; host comments under a low per-viewer cap."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from liveroom.redis_local import RedisProcess
from tests.conftest import HUB_ENV
from tests.support import Client, HubProcess, http, t, token


def room() -> str:
    return "mod" + uuid.uuid4().hex[:8]



def host_token(r: str) -> str:
    return token("host", role="host", rooms=[r])



async def refused(base: str, r: str, tok: str) -> tuple[int, dict[str, Any]]:
    """A handshake that is expected to be refused before the upgrade: (status, body)."""
    async with aiohttp.ClientSession() as s:
        try:
            ws = await s.ws_connect(base + "/ws", params={"room": r, "token": tok})
        except aiohttp.WSServerHandshakeError as exc:
            async with s.get(base + "/ws", params={"room": r, "token": tok}) as resp:
                return exc.status, await resp.json()
        await ws.close()
        return 101, {}


def bye(c: Client) -> dict[str, Any] | None:
    return c.last_frame("bye")


async def test_kick_then_ban_on_two_hubs(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    host = await Client.connect(a.base, r, host_token(r))
    viewer = await Client.connect(b.base, r, token("fan"))
    troll = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    # kicked over the WebSocket by the host on hub a: both of its sockets go, not the fan's
    assert (await host.call("kick", user="troll"))["ok"]
    for c in troll:
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert bye(c) == {"t": "bye", "reason": "kicked", "reconnect": False}
    assert not viewer.closed.is_set()
    # a kick is not a ban: it may come back, on either hub
    troll = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    # banned for a minute over the HTTP API of hub b
    status, body = await http("POST", f"{b.base}/api/rooms/{r}/bans", host_token(r), {"user": "troll", "seconds": 60})
    assert status == 200, body
    for c in troll:
        await asyncio.wait_for(c.closed.wait(), t(5))
        assert bye(c) == {"t": "bye", "reason": "banned", "reconnect": False}
    for h in hubs2:
        status, body = await refused(h.base, r, token("troll"))
        assert status == 403 and body["error"]["code"] == "banned", (status, body)
    # the ban is the room's: the same user elsewhere, and other users here, are let in
    other = await Client.connect(a.base, room(), token("troll"))
    await other.close()
    # lifted: back in on both hubs
    assert (await host.call("ban", user="troll", seconds=0))["ok"]
    back = [await Client.connect(h.base, r, token("troll")) for h in hubs2]
    assert not viewer.closed.is_set() and not host.closed.is_set()
    for c in [*back, viewer, host]:
        await c.close()


async def test_kick_and_ban_are_host_ops(hubs2: list[HubProcess]) -> None:
    r = room()
    fan = await Client.connect(hubs2[0].base, r, token("fan"))
    reply = await fan.call("kick", user="host")
    assert reply["error"]["code"] == "forbidden"
    reply = await fan.call("ban", user="x", seconds=-2)
    assert reply["error"]["code"] == "bad_field"
    status, body = await http("POST", f"{hubs2[0].base}/api/rooms/{r}/kicks", token("fan"), {"user": "x"})
    assert status == 403
    await fan.close()


async def test_ban_forever_and_expiring(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    host = await Client.connect(a.base, r, host_token(r))
    assert (await host.call("ban", user="gone", seconds=-1))["ok"]
    assert (await host.call("ban", user="brief", seconds=1))["ok"]
    assert (await refused(b.base, r, token("gone")))[0] == 403
    assert (await refused(b.base, r, token("brief")))[0] == 403
    await asyncio.sleep(1.2)
    c = await Client.connect(b.base, r, token("brief"))
    assert (await refused(a.base, r, token("gone")))[0] == 403
    await c.close()
    await host.close()


async def put_words(base: str, r: str, words: list[str], action: str, contacts: bool = False) -> None:
    status, body = await http("PUT", f"{base}/api/rooms/{r}/words", host_token(r), {"words": words, "action": action, "contacts": contacts})
    assert status == 200, body


async def test_word_filter_refuse_with_evasions_on_both_hubs(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    await put_words(a.base, r, ["微信", "傻瓜", "spam"], "refuse", contacts=True)
    status, body = await http("GET", f"{b.base}/api/rooms/{r}/words", host_token(r))
    assert body["words"] == ["spam", "傻瓜", "微信"] and body["action"] == "refuse" and body["contacts"]
    await asyncio.sleep(t(1.1))  # hub b re-reads the list's version at most once a second
    fans = [await Client.connect(h.base, r, token(f"fan{i}")) for i, h in enumerate(hubs2)]
    for fan in fans:
        for text in ["加我微 信", "加我 微.信", "ＳＰＡＭ", "傻 瓜！", "請加微信", "call 138 1234 5678", "加V: abc_1234", "扣扣 12345678"]:
            reply = await fan.call("comment", text=text)
            assert reply["error"]["code"] == "blocked", (text, reply)
        assert (await fan.call("comment", text="好看, 多少钱?"))["ok"]
    # the host's own comments are not filtered
    host = await Client.connect(a.base, r, host_token(r))
    assert (await host.call("comment", text="微信 sale"))["ok"]
    for c in [*fans, host]:
        await c.close()


async def test_word_filter_mask_and_shadow(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    await put_words(a.base, r, ["聯繫"], "mask", contacts=True)  # a traditional word matches simplified text
    await asyncio.sleep(t(1.1))
    author = await Client.connect(a.base, r, token("author"))
    other = await Client.connect(b.base, r, token("other"))
    assert (await author.call("comment", text="请 联 系 我 13812345678"))["ok"]
    await other.wait_for(lambda: other.of_type("comment"), what="the masked comment")
    assert other.of_type("comment")[0]["text"] == "请 * * 我 ***********"
    # shadow: the author sees it (on both of its sockets' hub), nobody else does
    await put_words(b.base, r, ["傻瓜"], "shadow")
    await asyncio.sleep(t(1.1))
    seq = (await author.call("comment", text="你是傻 瓜"))["seq"]
    after = (await author.call("comment", text="fine"))["seq"]
    await author.wait_for(lambda: any(e["seq"] == after for e in author.of_type("comment")), what="own comments")
    await other.wait_for(lambda: any(e["seq"] == after for e in other.of_type("comment")), what="the next comment")
    mine = {e["seq"]: e for e in author.of_type("comment")}
    assert mine[seq]["text"] == "你是傻 瓜" and "shadow" not in mine[seq]
    assert seq not in {e["seq"] for e in other.of_type("comment")}
    # a late joiner that resumes from before it does not get it either; the author does
    late = await Client.connect(b.base, r, token("late"), since=seq - 1, epoch=other.welcome["epoch"])
    back = await Client.connect(b.base, r, token("author"), since=seq - 1, epoch=other.welcome["epoch"])
    await late.wait_for(lambda: any(e["seq"] == after for e in late.events if "seq" in e), what="resume")
    await back.wait_for(lambda: any(e["seq"] == after for e in back.events if "seq" in e), what="resume")
    assert seq not in {e.get("seq") for e in late.events}
    assert seq in {e.get("seq") for e in back.events}
    for c in [author, other, late, back]:
        await c.close()


async def test_reports_and_resolutions(hubs2: list[HubProcess]) -> None:
    a, b = hubs2
    r = room()
    troll = await Client.connect(a.base, r, token("troll"))
    watcher = await Client.connect(b.base, r, token("watcher"))
    bad = (await troll.call("comment", text="buy followers here"))["seq"]
    meh = (await troll.call("comment", text="boring stream"))["seq"]
    reporters = [await Client.connect(hubs2[i % 2].base, r, token(f"rep{i}")) for i in range(3)]
    for i, c in enumerate(reporters):
        assert (await c.call("report", seq=bad, reason="spam" if i else "scam"))["ok"]
        assert (await c.call("report", seq=bad, reason="again"))["ok"]  # one per user: not counted
    assert (await reporters[0].call("report", seq=meh, reason="rude"))["ok"]
    assert (await reporters[0].call("report", seq=10_000, reason="x"))["error"]["code"] == "no_such_comment"
    assert (await troll.call("report", seq=bad, reason="x"))["error"]["code"] == "bad_field"  # its own
    status, body = await http("GET", f"{b.base}/api/rooms/{r}/reports", host_token(r))
    assert status == 200, body
    assert [(x["seq"], x["reports"]) for x in body["reports"]] == [(bad, 3), (meh, 1)]
    top = body["reports"][0]
    assert top["text"] == "buy followers here" and top["user"]["id"] == "troll" and top["reasons"] == ["spam", "scam"]
    assert (await http("GET", f"{b.base}/api/rooms/{r}/reports", token("rep0")))[0] == 403
    # delete: the comment goes everywhere
    status, body = await http("POST", f"{a.base}/api/rooms/{r}/reports/{bad}/resolve", host_token(r), {"action": "delete"})
    assert status == 200 and body["action"] == "delete", body
    await watcher.wait_for(lambda: any(e["comment"] == bad for e in watcher.of_type("comment_deleted")), what="comment_deleted")
    # mute with escalate walks the ladder: a day, then a week
    status, body = await http("POST", f"{b.base}/api/rooms/{r}/reports/{meh}/resolve", host_token(r), {"action": "mute", "escalate": True})
    assert status == 200 and body["step"] == 1, body
    assert abs(body["until"] / 1000 - time.time() - 86400) < 60
    reply = await troll.call("comment", text="hello?")
    assert reply["error"]["code"] == "muted" and "for another 864" in reply["error"]["message"], reply
    status, body = await http("GET", f"{b.base}/api/rooms/{r}/reports", host_token(r))
    assert body["reports"] == []
    host = await Client.connect(a.base, r, host_token(r))
    second = await host.call("mute", user="troll", escalate=True)
    assert second["step"] == 2 and abs(second["until"] / 1000 - time.time() - 604800) < 60, second
    for _ in range(3):
        last = await host.call("mute", user="troll", escalate=True)
    assert last["step"] == 5 and last["until"] == -1  # past the ladder's end: its last step, forever
    reply = await troll.call("comment", text="hello?")
    assert reply["error"]["code"] == "muted" and "for good" in reply["error"]["message"]
    assert (await host.call("mute", user="troll", seconds=0))["until"] == 0
    assert (await troll.call("comment", text="sorry"))["ok"]
    # dismiss and ban
    spam = (await troll.call("comment", text="again"))["seq"]
    assert (await reporters[1].call("report", seq=spam, reason="spam"))["ok"]
    status, body = await http("POST", f"{a.base}/api/rooms/{r}/reports/{spam}/resolve", host_token(r), {"action": "dismiss"})
    assert status == 200
    status, body = await http("POST", f"{a.base}/api/rooms/{r}/reports/{spam}/resolve", host_token(r), {"action": "dismiss"})
    assert status == 404 and body["error"]["code"] == "no_such_comment"
    assert (await reporters[2].call("report", seq=spam, reason="spam"))["ok"]
    status, body = await http("POST", f"{a.base}/api/rooms/{r}/reports/{spam}/resolve", host_token(r), {"action": "ban"})
    assert status == 200
    await asyncio.wait_for(troll.closed.wait(), t(5))
    assert bye(troll) == {"t": "bye", "reason": "banned", "reconnect": False}
    assert (await refused(b.base, r, token("troll")))[0] == 403
    for c in [watcher, host, *reporters]:
        await c.close()


async def test_host_comments_are_never_sampled_out(start_hub: Any, redis1: RedisProcess) -> None:
    env = {**HUB_ENV, "LIVEROOM_VIEWER_COMMENT_CAP": "2"}
    h = start_hub(LIVEROOM_REDIS=redis1.url, **env)
    r = room()
    host = await Client.connect(h.base, r, host_token(r))
    viewer = await Client.connect(h.base, r, token("viewer"))
    fans = [await Client.connect(h.base, r, token(f"fan{i}")) for i in range(4)]
    host_seqs = []
    for round_ in range(10):
        for i, f in enumerate(fans):
            await f.send({"t": "comment", "text": f"flood {round_} {i}"})
        host_seqs.append((await host.call("comment", text=f"host says {round_}"))["seq"])
    await viewer.wait_for(lambda: host_seqs[-1] in {e["seq"] for e in viewer.of_type("comment")}, timeout=10, what="host comments")
    got = {e["seq"]: e for e in viewer.of_type("comment")}
    assert all(s in got and got[s]["host"] is True for s in host_seqs)
    assert viewer.dropped > 0  # the fans' comments were sampled
    assert not any("host" in e for e in viewer.of_type("comment") if e["user"]["id"] != "host")
    for c in [host, viewer, *fans]:
        await c.close()


async def test_global_word_list_from_a_file(start_hub: Any, redis1: RedisProcess, tmp_path: Any) -> None:
    words = tmp_path / "words.txt"
    words.write_text("# the deployment's list\n代购\n\nscam\n", encoding="utf-8")
    h = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_WORDS_FILE=str(words), LIVEROOM_CONTACT_RULE="1", **HUB_ENV)
    r = room()
    fan = await Client.connect(h.base, r, token("fan"))
    for text in ["找代 购", "ＳＣＡＭ!", "加微信 wxid_abc123"]:
        assert (await fan.call("comment", text=text))["error"]["code"] == "blocked", text
    # a room's own list adds to the global one, with its own action
    await put_words(h.base, r, ["bargain"], "mask")
    reply = await fan.call("comment", text="scam bargain")
    assert reply["ok"]
    await fan.wait_for(lambda: any(e["seq"] == reply["seq"] for e in fan.of_type("comment")), what="the masked comment")
    assert [e["text"] for e in fan.of_type("comment") if e["seq"] == reply["seq"]] == ["**** *******"]
    await fan.close()
