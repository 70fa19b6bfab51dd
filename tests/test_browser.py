"""The demo viewer and the host console in a real browser (Debian's chromium, driven by
Playwright; no browser download) against a real hub process: two viewers and the console
comment, like, run a flash sale and a draw, and each page shows what its user should see.
Screenshots go to test-output/screenshots/ (gitignored)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from liveroom.redis_local import RedisProcess
from tests.conftest import HUB_ENV
from tests.support import ROOT, HubProcess, t

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-output" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: apt-get install -y chromium (make test does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def ms(seconds: float) -> float:
    return t(seconds) * 1000


def open_page(browser: Browser, url: str, width: int, height: int, errors: list[str]) -> Page:
    """A page in a context of its own (its own sessionStorage: its own viewer)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.on("pageerror", lambda e: errors.append(f"{url}: {e}"))
    page.on("console", lambda m: errors.append(f"{url}: {m.text}") if m.type == "error" else None)
    page.goto(url)
    return page


def overview(browser: Browser, shots: dict[str, bytes]) -> None:
    """The console and both phones side by side in one picture (test-output/screenshots/
    overview.png; a copy is docs/img/pages.png, shown in the README)."""
    img = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in shots.items()}
    page = browser.new_page(viewport={"width": 1600, "height": 760})
    page.set_content(
        '<body style="margin:0;background:#0b0d12;display:flex;gap:12px;padding:12px;align-items:flex-start">'
        '<img src="{console}" style="width:1000px">'
        '<img src="{demo-ann}" style="width:282px"><img src="{demo-bob}" style="width:282px"></body>'.replace("{console}", img["console"])
        .replace("{demo-ann}", img["demo-ann"])
        .replace("{demo-bob}", img["demo-bob"])
    )
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    page.close()


def test_viewers_and_console_run_a_room(browser: Browser, start_hub: Callable[..., HubProcess], redis1: RedisProcess) -> None:
    hub = start_hub(LIVEROOM_REDIS=redis1.url, LIVEROOM_DEV_TOKENS="1", **HUB_ENV)
    room = "browser-room"
    errors: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    wait: dict[str, Any] = {"timeout": ms(10)}

    # the host: a dev token for the room, then connect
    con = open_page(browser, f"{hub.base}/console?room={room}", 1440, 1000, errors)
    con.get_by_test_id("dev-token").click()
    expect(con.get_by_test_id("token")).not_to_be_empty(**wait)
    con.get_by_test_id("connect").click()
    expect(con.get_by_test_id("conn")).to_contain_text(f"host of {room}", **wait)
    con.get_by_test_id("live-start").click()
    expect(con.get_by_test_id("live-state")).to_contain_text("LIVE", **wait)

    ann = open_page(browser, f"{hub.base}/demo?room={room}&user=ann&name=Ann", 420, 800, errors)
    bob = open_page(browser, f"{hub.base}/demo?room={room}&user=bob&name=Bob", 420, 800, errors)
    viewers = (ann, bob)
    for v in viewers:
        expect(v.get_by_test_id("status")).to_contain_text("connected", **wait)
        expect(v.get_by_test_id("live")).to_have_text("LIVE", **wait)
        expect(v.get_by_test_id("online")).to_have_text("3", **wait)  # Ann, Bob and the host
    expect(con.get_by_test_id("f-online")).to_have_text("3", **wait)

    # comments: a viewer's, then the host's, styled apart
    ann.get_by_test_id("comment-input").fill("hello from Ann")
    ann.get_by_test_id("comment-send").click()
    con.get_by_test_id("host-say").fill("welcome, everyone")
    con.get_by_test_id("host-say").press("Enter")
    for v in viewers:
        expect(v.get_by_test_id("comment").filter(has_text="hello from Ann")).to_have_count(1, **wait)
        expect(v.get_by_test_id("host-comment")).to_contain_text("welcome, everyone", **wait)
    expect(con.get_by_test_id("feed")).to_contain_text("Ann: hello from Ann", **wait)

    # a milestone at every 10 likes, then Bob taps 12 times: both counters climb, both see the toast
    con.locator("#milestone-form input[name=every]").fill("10")
    con.get_by_test_id("milestone-set").click()
    expect(con.locator("#milestones li")).to_have_count(1, **wait)
    for _ in range(12):
        bob.get_by_test_id("like").click()
    for v in viewers:
        expect(v.get_by_test_id("likes")).to_have_text("12", **wait)
        expect(v.get_by_test_id("milestone")).to_contain_text("10 likes", **wait)
    expect(con.get_by_test_id("f-likes")).to_have_text("12", **wait)

    # a notice and a pinned product
    con.get_by_test_id("notice-text").fill("free shipping tonight")
    con.get_by_test_id("notice").click()
    con.get_by_test_id("pin-title").fill("Silk scarf")
    con.get_by_test_id("pin").click()
    for v in viewers:
        expect(v.get_by_test_id("notice")).to_contain_text("free shipping tonight", **wait)
        expect(v.get_by_test_id("pinned-title")).to_have_text("Silk scarf", **wait)

    # a flash sale of 2, one each: live stock, then sold out on both phones and the console
    con.get_by_test_id("sale-title").fill("Lipstick #520")
    con.get_by_test_id("sale-stock").fill("2")
    con.get_by_test_id("sale-open").click()
    for v in viewers:
        expect(v.get_by_test_id("stock")).to_have_text("2 left", **wait)
    ann.get_by_test_id("grab").click()
    expect(ann.get_by_test_id("bought")).to_contain_text("ordered 1", **wait)
    for v in viewers:
        expect(v.get_by_test_id("stock")).to_have_text("1 left", **wait)
    bob.get_by_test_id("grab").click()
    for v in viewers:
        expect(v.get_by_test_id("stock")).to_have_text("sold out", **wait)
        expect(v.get_by_test_id("grab")).to_be_disabled(**wait)
    expect(con.get_by_test_id("sale-stock-left")).to_have_text("0/2 left", **wait)
    expect(con.get_by_test_id("f-orders")).to_have_text("2", **wait)
    expect(con.get_by_test_id("f-gmv")).to_have_text("¥19.80", **wait)

    # a draw for two: both join, both win, everyone sees the winners
    con.get_by_test_id("draw-prize").fill("Gift box")
    con.get_by_test_id("draw-winners").fill("2")
    con.get_by_test_id("draw-seconds").fill("4")
    con.get_by_test_id("draw-start").click()
    for v in viewers:
        expect(v.get_by_test_id("prize")).to_have_text("Gift box × 2", **wait)
        expect(v.get_by_test_id("countdown")).to_be_visible(**wait)
        v.get_by_test_id("join-draw").click()
        expect(v.get_by_test_id("joined")).to_be_visible(**wait)
    ann.screenshot(path=str(SHOTS / "demo-draw-open.png"))
    for v in viewers:
        expect(v.get_by_test_id("winners")).to_contain_text("Ann", timeout=ms(20))
        expect(v.get_by_test_id("winners")).to_contain_text("Bob", **wait)
        expect(v.get_by_test_id("draw")).to_contain_text("You won!", **wait)
    expect(con.get_by_test_id("draw-state")).to_contain_text("2 entered", **wait)

    # moderation: Bob reports Ann's comment, the host deletes it from the reports queue
    bob.get_by_test_id("comment").filter(has_text="hello from Ann").locator("button.report").click()
    report = con.get_by_test_id("report").filter(has_text="hello from Ann")
    expect(report).to_have_count(1, timeout=ms(15))
    report.get_by_role("button", name="Delete").click()
    for v in viewers:
        expect(v.get_by_test_id("comment").filter(has_text="hello from Ann")).to_have_count(0, **wait)

    # the word filter: the host adds a word, Ann's comment with it is refused (and she is told)
    con.get_by_test_id("words").fill("spam")
    con.get_by_test_id("words-save").click()
    expect(con.locator("#words-state")).to_contain_text("saved 1 word", **wait)
    ann.get_by_test_id("comment-input").fill("cheap SPAM here")
    ann.get_by_test_id("comment-send").click()
    expect(ann.get_by_test_id("toast-error")).to_contain_text("blocked", **wait)

    bob.get_by_test_id("comment-input").fill("the scarf is so pretty!")
    bob.get_by_test_id("comment-input").press("Enter")
    expect(ann.get_by_test_id("comment").filter(has_text="so pretty")).to_contain_text("Bob", **wait)

    # the console's per-minute charts of the live session (uPlot draws into a canvas)
    expect(con.locator("#chart-online canvas")).to_have_count(1, timeout=ms(15))
    expect(con.get_by_test_id("charts-note")).to_contain_text("live", **wait)

    con.evaluate("window.scrollTo(0, 0)")
    shots = {name: page.screenshot(path=str(SHOTS / f"{name}.png")) for name, page in (("demo-ann", ann), ("demo-bob", bob), ("console", con))}
    overview(browser, shots)

    # the mute ladder from the comments feed: Bob gets its first step (a day), and his next
    # comment is refused on his phone
    con.get_by_test_id("feed").locator("li", has_text="so pretty").get_by_role("button", name="Mute ↑").click()
    expect(con.get_by_test_id("toast-ok").filter(has_text="Bob muted")).to_contain_text("(step 1)", **wait)
    bob.get_by_test_id("comment-input").fill("can I still talk?")
    bob.get_by_test_id("comment-send").click()
    expect(bob.get_by_test_id("toast-error")).to_contain_text("muted", **wait)

    # a kick from the comments feed: Bob's page says so and does not come back
    con.get_by_test_id("feed").locator("li", has_text="so pretty").get_by_role("button", name="Kick").click()
    expect(bob.get_by_test_id("status")).to_contain_text("kicked", **wait)
    expect(ann.get_by_test_id("online")).to_have_text("2", **wait)
    assert not [e for e in errors if "Failed to load resource" not in e], errors
