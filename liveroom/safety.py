"""Refuse to serve a public address with a secret anyone can read.

The repository ships secrets so that `make serve`, the tests and the benchmarks work out of
the box. Whoever reads the repository can sign an `admin` token with any of them, so a hub
that listens beyond loopback with one of them (or with any secret short enough to guess) is
an open door. `serve` calls `check_exposure` before it starts anything.
"""

from __future__ import annotations

import ipaddress

MIN_SECRET_BYTES = 32

# Every secret published in this repository (config.toml, tests, benchmarks).
# tests/test_units.py checks that the ones in config.toml, tests/ and bench/ are all here.
KNOWN_DEV_SECRETS: frozenset[str] = frozenset(
    {
        "dev-only-secret-change-me-0123456789abcdef",  # config.toml
        "test-secret-0123456789abcdef0123456789abcdef",  # tests/support.py
        "old-secret-0123456789abcdef0123456789",  # tests/test_bad_input.py (rotation)
        "bench-secret-0123456789abcdef0123456789abcdef",  # bench/fanout.py, bench/flash_sale.py
        "gc-objects-secret-0123456789abcdef0123456789ab",  # bench/gc_objects.py
    }
)

HOW_TO_FIX = (
    "Set a real secret of 32+ random bytes with LIVEROOM_SECRETS (comma-separated for rotation), e.g. "
    "LIVEROOM_SECRETS=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'); "
    "or, on a trusted development network only, pass --insecure-dev (or LIVEROOM_INSECURE_DEV=1)"
)


class UnsafeExposure(ValueError):
    """The hub would listen beyond loopback with a secret that is published or too short."""


def is_loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1 or `localhost`. Anything else,
    including 0.0.0.0, :: and other host names, is treated as public."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def weak_secrets(secrets: tuple[str, ...]) -> list[str]:
    """Why each weak secret is weak (never the secret itself: this goes to logs)."""
    problems = []
    for i, s in enumerate(secrets, 1):
        if s in KNOWN_DEV_SECRETS:
            problems.append(f"secret #{i} is a development secret published in the liveroom repository")
        elif len(s.encode()) < MIN_SECRET_BYTES:
            problems.append(f"secret #{i} is shorter than {MIN_SECRET_BYTES} bytes")
    return problems


def check_exposure(host: str, secrets: tuple[str, ...], insecure_dev: bool) -> None:
    """Raise UnsafeExposure if a hub on `host` would accept tokens signed with a secret
    that is published or short; loopback, or the explicit development switch, is allowed."""
    if insecure_dev or is_loopback(host):
        return
    problems = weak_secrets(secrets)
    if problems:
        raise UnsafeExposure(
            f"refusing to listen on {host or '*'} (not loopback): {'; '.join(problems)}. "
            f"Anyone who reads the repository could sign an admin token. {HOW_TO_FIX}"
        )


def check_dev_tokens(host: str, dev_tokens: bool, insecure_dev: bool) -> None:
    """Raise UnsafeExposure if GET /dev/token (which signs a host token for anyone who asks)
    would be served beyond loopback without the explicit development switch: whatever the
    secret, that endpoint alone hands out the room."""
    if not dev_tokens or insecure_dev or is_loopback(host):
        return
    raise UnsafeExposure(
        f"refusing to listen on {host or '*'} (not loopback) with auth.dev_tokens / LIVEROOM_DEV_TOKENS=1: "
        "GET /dev/token signs host tokens for anyone. Turn it off, listen on 127.0.0.1, or, on a trusted "
        "development network only, pass --insecure-dev (or LIVEROOM_INSECURE_DEV=1)"
    )
