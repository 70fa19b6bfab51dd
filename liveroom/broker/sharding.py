"""Rooms to shards by jump consistent hashing (Lamport & Veach, arXiv:1406.2294).

Adding an (n+1)th shard moves about 1/(n+1) of the rooms and no room moves between the
old shards, unlike `hash % n`, which moves almost all of them.
"""

from __future__ import annotations

import hashlib


def room_hash(room: str) -> int:
    """A stable 64-bit key for a room id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(room.encode(), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    if buckets <= 0:
        raise ValueError("buckets must be >= 1")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_of(room: str, shards: int) -> int:
    return jump_hash(room_hash(room), shards)
