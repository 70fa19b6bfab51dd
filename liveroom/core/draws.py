"""Lucky draws: started by a host, entered by joining, by commenting a keyword or by being
in the room, closed exactly once by whichever hub claims it first, and verifiable.

The seed is drawn at the start and only its sha256 (the commit) is published; at the close
the winners are computed here, in Python, from the seed and the sorted entrant list, with
PROTOCOL.md's algorithm (`pick_winners`), and published with the seed. Redis holds the
draw, its entrants and the claim; every change of state is one script call, and no single
command of the close reads a whole big set (entrants are read in chunks).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import msgpack

from liveroom.broker.base import Broker
from liveroom.config import Config
from liveroom.core.session import Session
from liveroom.errors import BAD_FIELD, FORBIDDEN, NO_SUCH_DRAW, ReplyError, Unavailable
from liveroom.protocol import events
from liveroom.protocol import frames as F
from liveroom.core.rules import normalise

log = logging.getLogger(__name__)

CLOSER_INTERVAL_S = 0.2  # how often every hub looks for due draws
CLAIM_TTL_MS = 15_000  # a close not finished in this long may be taken over by another hub
CHUNK = 10_000  # entrants per Redis call when reading them (ZRANGEBYLEX: ~1.5 ms at 1M)
# presence hash fields per HSCAN step: a hash costs Redis several times a sorted set per
# element scanned (HSCAN COUNT 10000 of a 1M hash: 17 ms mean here, COUNT 1000: 1.5 ms)
PRESENCE_SCAN = 1_000
PAGE_MAX = 10_000  # entrants per page of GET .../draws/{id}


def now_ms() -> int:
    return int(time.time() * 1000)


def commit_of(seed: bytes) -> str:
    """What draw_started publishes: anyone can check the seed published later against it."""
    return hashlib.sha256(seed).hexdigest()


def pick_winners(seed: bytes, entrants: Iterable[str], k: int) -> list[str]:
    """PROTOCOL.md's algorithm, exactly: draw i takes the pool member at
    sha256(seed || i as 8 bytes big-endian) mod the pool's size, without replacement.

    `list.pop(j)` moves the rest of the list: fine for small pools, but 10,000 winners of
    1,000,000 entrants would move ~40 GB. Past POP_LIMIT the same picks are made with a
    Fenwick tree over the sorted pool (the j-th remaining member in O(log n))."""
    pool = list(entrants)
    # the closer's entrants come sorted and distinct (ZRANGEBYLEX): checking is O(n), while
    # sorted(set(...)) of a million ids costs about a second
    if any(a >= b for a, b in zip(pool, itertools.islice(pool, 1, None))):
        pool = sorted(set(pool))
    k = min(k, len(pool))
    if k * len(pool) <= POP_LIMIT:
        winners: list[str] = []
        for i in range(k):
            winners.append(pool.pop(_draw_index(seed, i, len(pool))))
        return winners
    return [pool[j] for j in _picks_fenwick(seed, len(pool), k)]


POP_LIMIT = 20_000_000  # pool size x winners under which list.pop is fast enough


def _draw_index(seed: bytes, i: int, size: int) -> int:
    return int.from_bytes(hashlib.sha256(seed + i.to_bytes(8, "big")).digest(), "big") % size


def _picks_fenwick(seed: bytes, n: int, k: int) -> list[int]:
    """The positions in the original sorted pool that `pop` would have taken, in order."""
    tree = [0] * (n + 1)  # Fenwick tree of n ones: tree[i] = count of the range ending at i
    for i in range(1, n + 1):
        tree[i] += 1
        j = i + (i & -i)
        if j <= n:
            tree[j] += tree[i]
    top = 1 << (n.bit_length() - 1)
    out = []
    left = n
    for i in range(k):
        want = _draw_index(seed, i, left) + 1  # the want-th remaining member (1-based)
        pos = 0
        step = top
        while step:
            nxt = pos + step
            if nxt <= n and tree[nxt] < want:
                pos = nxt
                want -= tree[nxt]
            step >>= 1
        out.append(pos)  # 0-based index of member pos+1
        j = pos + 1
        while j <= n:
            tree[j] -= 1
            j += j & -j
        left -= 1
    return out


def is_anonymous(user: str) -> bool:
    """Anonymous viewers (auth.py: `anon:<hex>`) never enter a draw."""
    return user.startswith("anon:")


def won_members(session: str, users: list[str]) -> list[str]:
    """The room's `won` set members for winners of a draw started in `session` ("" none):
    `<session>|<user>` (user ids never hold `|`), so exclude_winners means "won in this live
    session"; plain user ids for draws started with no session live ("won in this room")."""
    return [f"{session}|{u}" for u in users] if session else list(users)


def won_in(session: str, members: set[str]) -> set[str]:
    """The users of `won` members who won a draw of `session` ("": of no session)."""
    if session:
        prefix = session + "|"
        return {m[len(prefix) :] for m in members if m.startswith(prefix)}
    return {m for m in members if "|" not in m}


class Draws:
    def __init__(self, cfg: Config, broker: Broker) -> None:
        self.cfg = cfg
        self.broker = broker
        self._closing: set[tuple[str, str]] = set()  # draws this hub is closing now
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, s: Session, op: F.DrawStart) -> dict[str, Any]:
        """Open a draw (host op, HTTP API, or a milestone firing): stored and announced
        with its commit in one script; `draw_open` while another draw is not closed."""
        seed = secrets.token_bytes(32)
        draw = "d" + secrets.token_hex(6)
        ends_at = now_ms() + op.duration_s * 1000
        info: dict[str, Any] = {
            "id": draw,
            "prize": op.prize,
            "winners": op.winners,
            "mode": op.mode,
            "keyword": op.keyword if op.mode == "keyword" else None,
            "ends_at": ends_at,
            "commit": commit_of(seed),
        }
        keyword = normalise(op.keyword) if op.mode == "keyword" else ""
        if op.mode == "keyword" and not keyword:
            raise ReplyError(BAD_FIELD, "keyword: required for mode keyword")
        seq, _, draw = await self.broker.draw_start(
            s.room, draw, events.pack(events.draw_started(info)), msgpack.packb(info), seed.hex(), keyword,
            ends_at, op.exclude_winners, (s.identity.id, op.key),
        )  # fmt: skip  # a repeated idempotency key: the first call's draw, nothing started
        return {"draw": draw, "seq": seq}

    async def join(self, s: Session, op: F.JoinDraw) -> None:
        if s.identity.anonymous:
            raise ReplyError(FORBIDDEN, "sign in to join a draw")
        await self.broker.draw_join(s.room, op.draw, s.identity.id, s.identity.name)

    async def view(self, room: str, draw: str, cursor: str = "", count: int = 1000) -> dict[str, Any]:
        """GET .../draws/{id}: the draw; after the close its seed, winners, the entrant
        count and one page of entrants in code point order (the sorted pool of the
        algorithm), from `cursor` (opaque: the previous page's `cursor`)."""
        record = await self.broker.draw_record(room, draw)
        if record is None:
            raise ReplyError(NO_SUCH_DRAW, "no such draw in this room")
        out: dict[str, Any] = {**record.info, "status": record.status}
        if record.result is None:
            # so far; an online draw's entrants are known only at the close
            counted = record.status == "open" and record.info["mode"] != "online"
            out["entrants"] = await self.broker.draw_entrant_count(room, None) if counted else None
            return {"draw": out}
        out.update(seed=record.seed_hex, winners=record.result["winners"], entrants=record.result["entrants"])
        count = max(1, min(count, PAGE_MAX))
        if record.info["mode"] == "online":  # a sorted list: the cursor is a position
            start = int(cursor) if cursor.isdigit() else 0
            page = await self.broker.draw_pool_page(room, draw, start, count)
            nxt = str(start + count) if len(page) == count else None
        else:  # a sorted set: the cursor is the last id of the page (ZRANGEBYLEX)
            page = await self.broker.draw_entrants(room, draw, cursor, count)
            nxt = page[-1] if len(page) == count else None
        return {"draw": out, "entrants": page, "cursor": nxt}

    # -- closing ---------------------------------------------------------------------------

    async def close(self, room: str, draw: str) -> bool:
        """Close one due draw if this hub wins the claim; True when it is settled (closed
        by this hub or another, or gone) and can leave the due index."""
        claim = await self.broker.draw_claim(room, draw, CLAIM_TTL_MS)
        if claim.status == "gone":
            return True
        if claim.status == "closed":  # by another hub, or by this one before a failure:
            return await self._settle(room, draw)  # its winners may not be marked yet
        if claim.status != "ok":  # early, or another hub is closing it
            return False
        record = await self.broker.draw_record(room, draw)
        if record is None:
            return True
        online = record.info["mode"] == "online"
        if online:
            pool = await self._present(room, claim.exclude, claim.session)
            await self.broker.draw_store_pool(room, draw, pool)
        else:
            pool = await self._read_entrants(room)
        seed = bytes.fromhex(claim.seed_hex)
        # CPU work on up to millions of ids: in a thread, so the hub's ticks go on
        winners = await asyncio.to_thread(pick_winners, seed, pool, int(record.info["winners"]))
        names = await self.broker.draw_names(room, winners)
        shown = [{"id": w, "name": n if n is not None else w} for w, n in zip(winners, names)]
        body = events.pack(events.draw_result(draw, shown, len(pool), claim.seed_hex))
        result = msgpack.packb({"winners": shown, "entrants": len(pool)})
        seq = await self.broker.draw_result(room, draw, body, result, len(pool), online)
        if seq == -2:
            log.warning("draw %s/%s: entrants changed while closing; again next round", room, draw)
            return False
        if seq < 0:
            if online:
                await self.broker.draw_drop_pool(room, draw)  # another hub's pool was kept
            return await self._settle(room, draw)
        await self.broker.draw_mark_won(room, won_members(claim.session, winners))
        log.info("draw %s/%s closed: %d entrants, %d winners", room, draw, len(pool), len(winners))
        return True

    async def _settle(self, room: str, draw: str) -> bool:
        """A closed draw leaves the due index only once its winners are in the room's `won`
        set (exclude_winners): whichever hub finds it closed marks them again (idempotent),
        so a hub dying between the result and the marking loses nothing."""
        record = await self.broker.draw_record(room, draw)
        if record is not None and record.result is not None:
            await self.broker.draw_mark_won(room, won_members(record.session, [w["id"] for w in record.result["winners"]]))
        return True

    async def _read_entrants(self, room: str) -> list[str]:
        """Every entrant of the open draw, CHUNK per call, already sorted."""
        pool: list[str] = []
        after = ""
        while True:
            page = await self.broker.draw_entrants(room, None, after, CHUNK)
            pool.extend(page)
            if len(page) < CHUNK:
                return pool
            after = page[-1]

    async def _present(self, room: str, exclude: bool, session: str = "") -> list[str]:
        """Online draws: the signed-in users present on any hub (the presence hash, HSCAN'd
        PRESENCE_SCAN at a time), sorted. Stored as this hub's own sorted LIST, which the result
        script renames to the draw's entrants: appending to a list costs Redis a fraction of
        inserting a million members into a sorted set (bench/RESULTS.md)."""
        users: set[str] = set()
        cursor = 0
        while True:
            cursor, page = await self.broker.presence_scan(room, cursor, PRESENCE_SCAN)
            users.update(u for u in page if not is_anonymous(u))
            if cursor == 0:
                break
        if exclude:
            users -= won_in(session, await self.broker.draw_won(room))
        return await asyncio.to_thread(sorted, users)

    async def _close_task(self, room: str, draw: str) -> None:
        try:
            if await self.close(room, draw):
                await self.broker.draw_done(room, draw)
        except Unavailable as exc:
            log.warning("draw closer %s/%s: %s", room, draw, exc)
        except Exception:
            log.exception("draw closer %s/%s failed", room, draw)
        finally:
            self._closing.discard((room, draw))

    async def closer(self) -> None:
        """Every hub runs this: every ~200 ms, the due draws of every registry are claimed
        (one hub wins each claim) and closed, each in its own task so that a big close
        never delays the others."""
        while True:
            await asyncio.sleep(CLOSER_INTERVAL_S)
            for registry in self.broker.registries():
                try:
                    due = await self.broker.due_draws(registry, now_ms(), 100)
                except Unavailable as exc:
                    log.warning("draw closer: %s", exc)
                    continue
                except Exception:
                    log.exception("draw closer failed")
                    continue
                for key in due:
                    if key not in self._closing:
                        self._closing.add(key)
                        task = asyncio.create_task(self._close_task(*key), name=f"draw-close-{key[1]}")
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
