"""The draw's pure parts: PROTOCOL.md's winner algorithm, its fairness, the keyword match."""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import count

import pytest

from liveroom.core.draws import commit_of, pick_winners
from liveroom.core.rules import normalise


def reference(seed: bytes, entrant_user_ids: list[str], k: int) -> list[str]:
    """PROTOCOL.md's listing, as written there."""
    pool = sorted(set(entrant_user_ids))
    winners: list[str] = []
    for i in count(0):
        if not pool or len(winners) == k:
            break
        h = int.from_bytes(hashlib.sha256(seed + i.to_bytes(8, "big")).digest(), "big")
        winners.append(pool.pop(h % len(pool)))
    return winners


def seeds(n: int) -> list[bytes]:
    return [hashlib.sha256(b"seed" + i.to_bytes(4, "big")).digest() for i in range(n)]


def test_pick_winners_is_the_protocol_algorithm() -> None:
    users = [f"u{i}" for i in range(37)] + ["u3", "u5", "Zed", "émile", "ｕ1"]
    for seed in seeds(50):
        for k in (1, 3, 10, 42, 100):
            assert pick_winners(seed, users, k) == reference(seed, users, k)


def test_the_fenwick_path_makes_the_same_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Big pools use a Fenwick tree instead of list.pop: the same winners, in order."""
    import liveroom.core.draws as D

    monkeypatch.setattr(D, "POP_LIMIT", 0)
    for n, k in ((1, 1), (2, 2), (7, 7), (100, 30), (1000, 1000), (4097, 50)):
        users = [f"u{i}" for i in range(n)]
        for seed in seeds(5):
            assert D.pick_winners(seed, users, k) == reference(seed, users, k)
            assert D.pick_winners(seed, sorted(users), k) == reference(seed, users, k)  # the closer's input


def test_winners_are_distinct_and_at_most_the_pool() -> None:
    seed = seeds(1)[0]
    assert pick_winners(seed, [], 5) == []
    got = pick_winners(seed, ["a", "b", "a", "c"], 10)
    assert sorted(got) == ["a", "b", "c"]
    assert commit_of(seed) == hashlib.sha256(seed).hexdigest()


def test_one_winner_is_uniform_chi_square() -> None:
    """10 entrants, 5,000 seeds: the chi-square statistic of the winner counts stays under
    the tabulated critical value for 9 degrees of freedom at p = 0.001 (27.877)."""
    users = [f"user{i}" for i in range(10)]
    n = 5000
    counts = Counter(pick_winners(s, users, 1)[0] for s in seeds(n))
    expected = n / len(users)
    stat = sum((counts[u] - expected) ** 2 / expected for u in users)
    assert stat < 27.877, (stat, counts)


def test_ordered_pairs_are_uniform_chi_square() -> None:
    """5 entrants, 2 winners, 6,000 seeds: all 20 ordered pairs equally likely
    (19 degrees of freedom, p = 0.001: 43.820), so the second pick is fair too."""
    users = ["a", "b", "c", "d", "e"]
    n = 6000
    counts = Counter(tuple(pick_winners(s, users, 2)) for s in seeds(n))
    pairs = [(x, y) for x in users for y in users if x != y]
    assert set(counts) == set(pairs)
    expected = n / len(pairs)
    stat = sum((counts[p] - expected) ** 2 / expected for p in pairs)
    assert stat < 43.820, (stat, counts)


def test_normalise_matches_case_width_and_spaces() -> None:
    assert normalise("I want the GIFT!") == "iwantthegift!"
    assert "gift" in normalise("ＧＩＦＴ please")  # full-width
    assert "gift" in normalise("g i f t")
    assert normalise("Straße") == "strasse"
    assert "抽奖" in normalise("我要 抽 奖")
    assert normalise("gi\u200bft") == "gift"  # a zero-width space cannot split the word


def test_draw_start_parses_exclude_winners() -> None:
    from liveroom.errors import ReplyError
    from liveroom.protocol import frames as F

    base = {"t": "draw_start", "prize": "Mug", "winners": 3, "mode": "join", "duration_s": 30}
    assert F.parse(base) == F.DrawStart("Mug", 3, "join", "", 30, False)
    assert F.parse({**base, "exclude_winners": True}).exclude_winners is True  # type: ignore[union-attr]
    with pytest.raises(ReplyError) as exc:
        F.parse({**base, "exclude_winners": "yes"})
    assert exc.value.code == "bad_field"
    with pytest.raises(ReplyError):
        F.parse({**base, "mode": "keyword"})  # keyword required
