"""Every event a hub sends has exactly the fields docs/protocol.md lists, whichever code
(Python or a Lua script) published it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from liveroom.protocol.events import DRAW_FIELDS, FIELDS, OPTIONAL, SALE_FIELDS
from tests.support import Client, HubProcess, token

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def documented() -> tuple[dict[str, set[str]], set[str]]:
    text = DOC.read_text()
    section = text[text.index("## Events") : text.index("## Client ops")]
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", section, re.M)
    events = {t: set(re.findall(r"`(\w+)`", fields)) for t, fields in rows}
    sale = re.search(r"A `sale` map .*? has (.+?)\.\n", section, re.S)
    assert sale is not None
    return events, set(re.findall(r"`(\w+)`", sale.group(1)))


def test_the_docs_list_the_fields_the_code_builds() -> None:
    events, sale = documented()
    assert events == {t: set(f) | OPTIONAL.get(t, set()) for t, f in FIELDS.items()}
    assert sale == set(SALE_FIELDS)


async def test_every_event_sent_has_exactly_its_documented_fields(hub: HubProcess) -> None:
    room = "ev" + uuid.uuid4().hex[:8]
    host = await Client.connect(hub.base, room, token("host", role="host", rooms=[room]))
    viewer = await Client.connect(hub.base, room, token("v"))
    try:
        assert (await host.call("live_start"))["ok"]  # a `live` event (status live)
        one = (await host.call("sale_create", sku="A", title="Hat", price=100, stock=1, limit=1))["sale"]
        other = (await host.call("sale_create", sku="B", title="Bag", price=200, stock=5, limit=2))["sale"]
        assert (await host.call("pin", product={"sku": "A", "title": "Hat"}))["ok"]
        assert (await host.call("notice", text="10% off"))["ok"]
        seq = (await viewer.call("comment", text="how much?"))["seq"]
        assert (await host.call("delete_comment", seq=seq))["ok"]
        assert (await host.call("milestone_set", kind="likes", value=3, reward=None))["ok"]
        await viewer.send({"t": "like", "n": 3})  # likes, and the milestone it crosses
        assert (await viewer.call("buy", sale=one, qty=1, key="k1"))["ok"]  # stock, then sold_out
        assert (await host.call("sale_close", sale=other))["ok"]  # a sale event from the close
        draw = (await host.call("draw_start", prize="Mug", winners=1, mode="join", duration_s=1))["draw"]
        assert (await viewer.call("join_draw", draw=draw))["ok"]  # draw_started, then draw_result
        assert (await host.call("live_end"))["ok"]  # a `live` event (status ended)
        want = set(FIELDS)
        await viewer.wait_for(lambda: want <= {e["type"] for e in viewer.events}, timeout=8, what=f"every event type: {want}")
        late = await Client.connect(hub.base, room, token("late"))
        await late.close()
    finally:
        await host.close()
        await viewer.close()

    def check(e: dict[str, Any]) -> None:
        assert FIELDS[e["type"]] <= set(e) - {"type"} <= FIELDS[e["type"]] | OPTIONAL.get(e["type"], set()), e
        if e["type"] == "sale":
            assert set(e["sale"]) == SALE_FIELDS, e
        if e["type"] == "draw_started":
            assert set(e["draw"]) == DRAW_FIELDS, e

    for e in viewer.events:
        check(e)
    closed = [e["sale"] for e in viewer.of_type("sale") if e["sale"]["status"] == "closed"]
    assert closed and closed[0]["initial"] == 5 and closed[0]["stock"] == 5
    assert late.welcome["state"]["live"] is None  # ended before it joined
    for s in late.welcome["state"]["sales"]:
        assert set(s) == SALE_FIELDS
