"""The pure parts, without sockets or Redis: codec, frames, rules, config."""

from __future__ import annotations

import random
import struct

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveroom import config
from liveroom.core.rules import CommentSampler, TokenBucket, clean_text
from liveroom.errors import ReplyError
from liveroom.protocol import frames as F
from liveroom.protocol.codec import Codec, decode, encode, ws_frame


@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70000])
def test_ws_frame_lengths(n: int) -> None:
    """Frames carry the RFC 6455 length encoding for every size class."""
    f = ws_frame(b"x" * n, 2)
    assert f[0] == 0x82
    if n < 126:
        assert f[1] == n and len(f) == n + 2
    elif n < 65536:
        assert f[1] == 126 and struct.unpack("!H", f[2:4])[0] == n
    else:
        assert f[1] == 127 and struct.unpack("!Q", f[2:10])[0] == n


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_bad_frame(data: bytes) -> None:
    """Any bytes decode to a map or fail with bad_frame, never another exception."""
    for codec in Codec:
        try:
            m = decode(data, codec, 8192)
            assert isinstance(m, dict)
        except ReplyError as exc:
            assert exc.code == "bad_frame"


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()), max_size=6))
def test_parse_never_raises_anything_but_reply_errors(m: dict[str, object]) -> None:
    """Arbitrary maps, even with a known `t`, give an op or a protocol code."""
    for t in ("comment", "like", "buy", "pin", "mute", "sale_create", "draw_start", "nope"):
        try:
            F.parse({**m, "t": t})
        except ReplyError as exc:
            assert exc.code in ("bad_field", "unknown_op")


def test_encode_roundtrip() -> None:
    obj = {"t": "batch", "events": [{"type": "comment", "text": "你好"}]}
    assert msgpack.unpackb(encode(obj, Codec.MSGPACK)) == obj
    assert decode(encode(obj, Codec.JSON), Codec.JSON, 8192) == obj


def test_clean_text() -> None:
    assert clean_text("  a\tb\u200bc  ", 10) == "a bc"
    assert clean_text("😀 好", 10) == "😀 好"
    with pytest.raises(ReplyError) as e:
        clean_text("\u202e\u200b ", 10)
    assert e.value.code == "empty"


def _feed(s: CommentSampler, per_tick: list[int], tick_s: float = 0.1) -> int:
    """Comments a viewer is sent when the hub calls pick() on ticks with comments."""
    sent, now = 0, s.stamp
    for n in per_tick:
        now += tick_s
        if n:
            pick = s.pick(n, now)
            sent += n if pick is None else len(pick)
    return sent


def test_sampler_holds_the_cap_over_time() -> None:
    """At 20/s and 100 ms ticks, a flood of 50 per tick yields about 2 per tick."""
    sent = _feed(CommentSampler(20, 100), [50] * 100)  # 10 s
    assert 200 <= sent <= 210  # 20/s plus the initial half-second allowance


def test_sampler_passes_everything_under_the_cap() -> None:
    s = CommentSampler(20, 100)
    assert _feed(s, [1] * 100) == 100
    assert CommentSampler(0, 100).pick(1000) is None


def test_sampler_gives_the_full_cap_when_comments_come_unevenly() -> None:
    """Comments at exactly the cap but bunched (4,0,4,0 or 6,0,0 per tick, or random)
    are all shown: ticks without comments earn allowance too."""
    assert _feed(CommentSampler(20, 100), [4, 0] * 100) == 400
    assert _feed(CommentSampler(20, 100), [6, 0, 0] * 100) == 600
    rng = random.Random(7)
    # random arrivals over 60 s at 90 % of the cap: practically all shown
    ticks = [sum(rng.random() < 0.18 for _ in range(10)) for _ in range(600)]
    assert _feed(CommentSampler(20, 100), ticks) >= 0.98 * sum(ticks)
    # at the cap on average: the cap's worth, give or take the bursts above it
    ticks = [sum(rng.random() < 0.2 for _ in range(10)) for _ in range(600)]
    assert _feed(CommentSampler(20, 100), ticks) >= 0.95 * min(sum(ticks), 60 * 20)
    # and at twice the cap, bunched, a viewer still gets the cap, not less
    assert 1190 <= _feed(CommentSampler(20, 100), [12, 0] * 300) <= 1210


def test_token_bucket() -> None:
    b = TokenBucket(2, 3)
    assert [b.take(now=b.stamp) for _ in range(4)] == [True, True, True, False]
    assert b.take(now=b.stamp + 0.5)


def test_config_env_overrides_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.toml"
    p.write_text('[room]\ntick_ms = 50\n[redis]\nurls = ["redis://a:1/0"]\n')
    c = config.load(p, env={"LIVEROOM_TICK_MS": "200", "LIVEROOM_SECRETS": "a,b"})
    assert c.room.tick_ms == 200 and c.auth.secrets == ("a", "b") and c.redis.urls == ("redis://a:1/0",)
    p.write_text("[room]\ntick_ms = 'fast'\n")
    with pytest.raises(config.ConfigError, match="room.tick_ms"):
        config.load(p, env={})
    p.write_text("[room]\ntik_ms = 5\n")
    with pytest.raises(config.ConfigError, match="tik_ms"):
        config.load(p, env={})


def test_cluster_seeds_string_or_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Several cluster seeds: a list in config.toml, or comma-separated (file or environment)."""
    p = tmp_path / "c.toml"
    p.write_text('[redis]\ncluster = ["redis://a:1/0", "redis://b:2/0"]\n')
    assert config.load(p, env={}).redis.cluster == ("redis://a:1/0", "redis://b:2/0")
    p.write_text('[redis]\ncluster = "redis://a:1/0"\n')
    assert config.load(p, env={}).redis.cluster == ("redis://a:1/0",)
    env = {"LIVEROOM_REDIS_CLUSTER": "redis://a:1/0, redis://b:2/0"}
    assert config.load(p, env=env).redis.cluster == ("redis://a:1/0", "redis://b:2/0")
    with pytest.raises(config.ConfigError, match="redis.cluster"):
        config.load(p, env={"LIVEROOM_REDIS_CLUSTER": "a:1"})


def test_repo_config_loads() -> None:
    """The shipped config.toml is valid and documents real keys."""
    from pathlib import Path

    c = config.load(Path(__file__).parent.parent / "config.toml", env={})
    assert c.room.viewer_comment_cap == 20 and c.room.tick_ms == 100


def test_deflate_frame_is_a_valid_compressed_message() -> None:
    """RSV1 set, and the payload inflates back (with the RFC 7692 tail restored), even for
    an inflater that keeps its context across messages."""
    import zlib

    from liveroom.protocol.codec import deflate_frame

    inflater = zlib.decompressobj(-15)
    for i in range(3):
        payload = msgpack.packb({"t": "batch", "events": [{"text": "ha" * 200, "i": i}]})
        f = deflate_frame(payload, 2, 15)
        assert f[0] == 0xC2  # FIN, RSV1, binary
        n = f[1] & 0x7F
        body = f[2:] if n < 126 else f[4:]
        assert len(body) < len(payload)
        assert inflater.decompress(body + b"\x00\x00\xff\xff") == payload


@given(st.lists(st.one_of(st.text(), st.binary(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=20))
def test_resp_packing_matches_redis_py(args: list[object]) -> None:
    """Our RESP packer sends exactly the bytes redis-py would."""
    from redis.connection import Connection

    from liveroom.broker.pipeline import pack

    assert pack(("EVALSHA", *args)) == b"".join(Connection().pack_command("EVALSHA", *args))
