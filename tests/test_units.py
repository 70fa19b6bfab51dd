"""The pure parts, without sockets or Redis: codec, frames, rules, config."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveroom import config
from liveroom.core.rules import CommentSampler, clean_text
from liveroom.errors import ReplyError
from liveroom.protocol import frames as F
from liveroom.protocol.codec import Codec, decode, encode, ws_frame
from tests.support import SECRET as SUPPORT_SECRET


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


_any_text = st.text(alphabet=st.characters(), max_size=8)  # lone surrogates included
_json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _any_text, st.binary(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_any_text, inner, max_size=4)),
    max_leaves=20,
)


@given(st.dictionaries(_any_text, _json_like, max_size=5))
def test_whatever_parses_can_be_encoded(m: dict[str, object]) -> None:
    """Any map, lone surrogates and NaN included, with any `t`: a ReplyError, or an op whose
    every string is valid UTF-8 (so the Redis packer and both codecs can carry it)."""
    from liveroom.broker.pipeline import pack

    for t in ("comment", "buy", "pin", "mute", "sale_create", "notice", "draw_start"):
        try:
            op = F.parse({**m, "t": t, "sale": "s1", "key": "k"} if t == "buy" else {**m, "t": t})
        except ReplyError as exc:
            assert exc.code in ("bad_field", "unknown_op")
            continue
        for v in op.__class__.__dataclass_fields__:
            value = getattr(op, v)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                pack(("EVALSHA", value))
        encode({"op": [getattr(op, v) for v in op.__class__.__dataclass_fields__]}, Codec.JSON)
        msgpack.packb([getattr(op, v) for v in op.__class__.__dataclass_fields__])


@pytest.mark.parametrize(
    "frame",
    [
        {"t": "comment", "text": "\ud800"},
        {"t": "comment", "text": "ok", "\udfff": 1},
        {"t": "like", "n": 1, "x": [{"y": "a\udc80"}]},
        {"t": "like", "n": 1, "x": float("nan")},
        {"t": "comment", "text": "x" * (F.MAX_STR + 1)},
    ],
)
def test_check_input_refuses_bad_text_anywhere(frame: dict[str, object]) -> None:
    with pytest.raises(ReplyError) as e:
        F.parse(frame)
    assert e.value.code == "bad_field"


def test_check_input_bounds_nesting() -> None:
    deep: object = "x"
    for _ in range(F.MAX_INPUT_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ReplyError):
        F.check_input({"t": "like", "x": deep})
    F.check_input({"t": "like", "x": [[["fine", "😀", {"k": 1.5}]]]})


def test_json_decode_marks_non_finite_numbers() -> None:
    """NaN/Infinity never come out of the JSON codec as floats; the frame is bad_field."""
    for lit in ("NaN", "Infinity", "-Infinity"):
        m = decode('{"t":"pin","id":1,"product":{"p":%s}}' % lit, Codec.JSON, 8192)
        assert F.frame_id(m) == 1
        with pytest.raises(ReplyError) as e:
            F.parse(m)
        assert e.value.code == "bad_field"
    with pytest.raises(ValueError):
        encode({"x": float("inf")}, Codec.JSON)


_json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=12,
)


@given(_json_value)
def test_json_safe_accepts_what_both_codecs_carry(v: object) -> None:
    """Anything built of JSON values within the bounds passes unchanged and encodes in both
    codecs, strictly (no NaN) for JSON."""
    import json

    try:
        out = F.json_safe(v, "product")
    except ReplyError as exc:  # only for the bounds: depth or size
        assert exc.code == "bad_field" and ("nested" in exc.message or "larger" in exc.message)
        return
    assert out is v
    json.loads(encode(out, Codec.JSON), parse_constant=lambda c: pytest.fail(c))
    encode(out, Codec.MSGPACK)


@given(_json_like)
def test_json_safe_output_always_encodes(v: object) -> None:
    """Whatever the input (bytes, NaN, surrogates, huge ints), json_safe either refuses it
    with bad_field or returns a value both codecs carry."""
    try:
        out = F.json_safe(v, "product")
    except ReplyError as exc:
        assert exc.code == "bad_field"
        return
    encode(out, Codec.JSON)
    encode(out, Codec.MSGPACK)


def _nest(depth: int) -> object:
    v: object = 1
    for _ in range(depth):
        v = {"k": v}
    return v


@pytest.mark.parametrize(
    "value",
    [
        {"a": {b"k": 1}},  # a bytes key, nested (msgpack)
        {b"k": 1},
        {1: "x"},
        {"p": float("nan")},
        {"p": float("inf")},
        {"p": [float("-inf")]},
        {"p": 2**53 + 1},
        {"p": -(2**64)},
        {"p": "\ud800"},
        {"\udfff": 1},
        {"p": b"bytes"},
        {"p": (1, 2)},
        {"p": {1, 2}},
        {"p": "x" * 5000},  # over 4 KB as JSON
        {"p": ["é" * 1000] * 3},  # 6 KB of UTF-8
        _nest(9),
    ],
)
def test_json_safe_refuses(value: object) -> None:
    with pytest.raises(ReplyError) as e:
        F.json_safe(value, "product")
    assert e.value.code == "bad_field" and e.value.message.startswith("product:")


def test_json_safe_accepts_plain_products() -> None:
    p = {"sku": "A1", "title": "羽绒服 😀", "price": 39900, "ratio": 0.5, "tags": ["new", None, True], "x": 2**53}
    assert F.json_safe(p, "product") is p
    assert F.json_safe(_nest(8), "product") == _nest(8)
    assert F.parse({"t": "pin", "product": p}) == F.Pin(p)


def test_exposure_check() -> None:
    """Loopback always serves; beyond it, published or short secrets are refused unless
    the development switch is on."""
    from liveroom.safety import UnsafeExposure, check_exposure, is_loopback

    shipped = config.load(Path(__file__).parent.parent / "config.toml", env={}).auth.secrets
    strong = ("k3Jq9vT2xLmN8pR4sW6yZ0aB1cD5eF7gH9iJ2kL4mN6",)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        check_exposure(host, shipped, insecure_dev=False)
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "example.com", "[::]"):
        assert not is_loopback(host)
        with pytest.raises(UnsafeExposure, match="LIVEROOM_SECRETS") as e:
            check_exposure(host, shipped, insecure_dev=False)
        assert shipped[0] not in str(e.value)  # never echo a secret
        check_exposure(host, shipped, insecure_dev=True)
        check_exposure(host, strong, insecure_dev=False)
        with pytest.raises(UnsafeExposure, match="shorter than 32 bytes"):
            check_exposure(host, (*strong, "short-but-not-published"), insecure_dev=False)
        with pytest.raises(UnsafeExposure):
            check_exposure(host, (strong[0], SUPPORT_SECRET), insecure_dev=False)
    check_exposure("0.0.0.0", (), insecure_dev=False)  # no secret: no token is accepted at all


def test_every_secret_in_the_repository_is_known() -> None:
    """The secrets the repository publishes (config.toml, tests, benchmarks) are all in
    safety.KNOWN_DEV_SECRETS, so none of them can serve a public address."""
    import re

    from liveroom.safety import KNOWN_DEV_SECRETS

    root = Path(__file__).parent.parent
    found = set(config.load(root / "config.toml", env={}).auth.secrets)
    for f in [*root.glob("tests/*.py"), *root.glob("bench/**/*.py")]:
        found.update(re.findall(r"""(?:SECRET\w*|\bold)\s*=\s*["']([^"']{8,})["']""", f.read_text()))
    found = {s for s in found if len(s.encode()) >= 32}  # shorter ones are refused anyway
    assert SUPPORT_SECRET in found and len(found) >= 4
    assert found <= KNOWN_DEV_SECRETS, found - KNOWN_DEV_SECRETS


def test_order_ids_carry_a_random_tag_and_still_parse() -> None:
    """An order id is o<len(room)>-<room>-<sale>-<tag>.<n>: the tag keeps ids apart when
    Redis loses <n>; ids made before the tag still name their room."""
    from liveroom.broker.pipeline import replicas_of
    from liveroom.core.sales import order_prefix, parse_order_id

    a, b = order_prefix("r-1", "s1") + "7", order_prefix("r-1", "s1") + "7"
    assert a != b and a.startswith("o3-r-1-s1-") and a.endswith(".7")
    assert parse_order_id(a) == parse_order_id(b) == parse_order_id("o3-r-1-s1-7") == ("r-1", "s1")
    for bad in ("o3-r-1-s1-zz.7", "o3-r-1-s1-ab.", "o3-r-1-s1-ab.x"):
        with pytest.raises(ReplyError):
            parse_order_id(bad)
    assert replicas_of([b"master", 10, [[b"127.0.0.1", b"7001", b"10"]]]) == 1
    assert replicas_of([b"slave", b"127.0.0.1", 7000, b"connected", 10]) == 0
