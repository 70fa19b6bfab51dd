"""Rooms spread evenly over shards, and adding a shard moves few of them."""

from liveroom.broker.keys import room_keys, room_of_channel
from liveroom.broker.sharding import jump_hash, shard_of


def test_rooms_spread_evenly_over_three_shards() -> None:
    """10,000 rooms over 3 shards: every shard within 10% of the mean."""
    counts = [0, 0, 0]
    for i in range(10_000):
        counts[shard_of(f"room-{i}", 3)] += 1
    mean = 10_000 / 3
    assert all(abs(c - mean) <= 0.1 * mean for c in counts), counts


def test_adding_a_fourth_shard_moves_few_rooms() -> None:
    """Going from 3 to 4 shards moves at most 30% of the rooms, and only onto the new one."""
    moved = 0
    for i in range(10_000):
        before, after = shard_of(f"room-{i}", 3), shard_of(f"room-{i}", 4)
        if before != after:
            moved += 1
            assert after == 3
    assert moved <= 3000, moved
    assert moved > 1500  # the new shard does take its share


def test_one_shard_takes_everything() -> None:
    """With a single shard every room maps to it (no division by the shard count)."""
    assert {jump_hash(k * 7919, 1) for k in range(1000)} == {0}


def test_room_keys_share_one_hash_tag() -> None:
    """Every key and the channel of a room carry the same {room} tag."""
    k = room_keys("shop:42")
    names = [k.meta, k.hist, k.channel, k.ref, k.hubs, k.mutes, k.hub_users("h1")]
    assert all("{shop:42}" in n for n in names)
    assert room_of_channel(k.channel.encode()) == "shop:42"
