"""RESP packing for the auto-pipeline: the hand-written Python packer liveroom used until
2026-12-01 (kept here as `python_pack`) against `hiredis.pack_command`, which
`liveroom.broker.pipeline.pack` now calls (measured as it is called, wrapper included).

The argument lists are the hub's real EVALSHA calls (the shapes of sale_buy, room_comment
and presence_sync, as broker/redis.py builds them). Each packer packs the same mix, runs
interleaved; the best of --repeat timeit runs is reported, per command and as a ratio.

    .venv/bin/python bench/pack_bench.py
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

import hiredis
import msgpack

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from liveroom.broker import keys as K  # noqa: E402
from liveroom.broker.pipeline import pack  # noqa: E402


def python_pack(args: tuple[Any, ...]) -> bytes:
    """The packer pipeline.py had before (a copy, byte for byte its logic)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bytes):
            b = a
        elif isinstance(a, int) and not isinstance(a, bool):
            b = b"%d" % a
        elif isinstance(a, float):
            b = repr(a).encode()
        else:
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


def commands() -> list[tuple[Any, ...]]:
    """A realistic mix: mostly buys and comments, some presence syncs."""
    sha = hashlib.sha1(b"script").hexdigest()
    room = "shop-live-20261130"
    k = K.room_keys(room)
    sale = "s1a2b3c4d5"
    out: list[tuple[Any, ...]] = []
    for i in range(100):
        user = f"wx_o6zAJs{i:06d}"
        keys = [k.sales, k.bought(sale), k.idem(sale), k.orders, k.pending, "lr:orders", k.meta, k.hist]
        args = ["PUBLISH", k.channel, sale, user, 1, f"{len(user)}:{user}key-{i}", f"o{len(room)}-{room}-{sale}-",
                900_000, "e8f1c2", 1000, room, f"key-{i}", msgpack.packb({"type": "sold_out", "sale": sale})]  # fmt: skip
        out.append(("EVALSHA", sha, len(keys), *keys, *args))
        event = msgpack.packb({"type": "comment", "user": {"id": user, "name": "小明"}, "text": "好看！多少钱？", "ts": 1764520000000 + i})
        out.append(("EVALSHA", sha, 4, k.meta, k.hist, k.mutes, f"lr:{{{room}}}:rate:{user}", "PUBLISH", k.channel,
                    event, user, 1764520000000 + i, 2.0, 5, 1000))  # fmt: skip
        if i % 10 == 0:
            out.append(("EVALSHA", sha, 3, k.ref, k.hubs, f"lr:{{{room}}}:hu:hub-1", "hub-1", 1764520000000,
                        *[f"wx_user{j}" for j in range(20)]))  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--number", type=int, default=200, help="passes over the mix per timeit run")
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args()
    cmds = commands()
    packers: dict[str, Callable[[tuple[Any, ...]], bytes]] = {
        "python pack (before)": python_pack,
        "hiredis (pipeline.pack)": pack,
    }
    for c in cmds:  # the same bytes, or the comparison means nothing
        assert python_pack(c) == pack(c) == hiredis.pack_command(c), c
    # runs interleaved (A B A B ...), so that a noisy neighbour hurts both alike
    runs: dict[str, list[float]] = {name: [] for name in packers}
    for _ in range(a.repeat):
        for name, fn in packers.items():
            runs[name].append(timeit.timeit(lambda fn=fn: [fn(c) for c in cmds], number=a.number))
    per_cmd: dict[str, float] = {}
    for name in packers:
        per_cmd[name] = min(runs[name]) / (a.number * len(cmds))
        print(f"{name:24s} {per_cmd[name] * 1e9:8.0f} ns per command (best of {a.repeat})")
    ratio = per_cmd["python pack (before)"] / per_cmd["hiredis (pipeline.pack)"]
    print(f"hiredis is {ratio:.2f}x as fast as the Python pack ({len(cmds)} commands, "
          f"{sum(len(c) for c in cmds) / len(cmds):.1f} arguments each on average)")  # fmt: skip


if __name__ == "__main__":
    main()
