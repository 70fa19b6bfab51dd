"""Pure room rules: comment text, rate limits, and which comments a flooded viewer sees."""

from __future__ import annotations

import time
import unicodedata

from liveroom.errors import EMPTY, TOO_LONG, ReplyError

# Unicode categories removed from comments: controls, format chars (bidi overrides, zero
# widths), unassigned and private use. Kept: letters, marks, numbers, punctuation,
# symbols (emoji) and plain spaces.
_STRIP = {"Cc", "Cf", "Cn", "Co", "Cs"}


def clean_text(text: str, max_chars: int) -> str:
    """The comment as shown to everyone, or `empty` / `too_long`."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _STRIP:
            if ch in "\n\t\r":
                out.append(" ")
            continue
        if cat in ("Zl", "Zp"):
            out.append(" ")
            continue
        out.append(ch)
    cleaned = " ".join("".join(out).split())
    if not cleaned:
        raise ReplyError(EMPTY, "comment is empty")
    if len(cleaned) > max_chars:
        raise ReplyError(TOO_LONG, f"comment is longer than {max_chars} characters")
    return cleaned


def clean_line(text: str, max_chars: int) -> str:
    """`text` as one safe line, never refused: the characters clean_text strips (controls,
    format chars such as bidi overrides and zero widths, unassigned, private use, lone
    surrogates) removed, every run of whitespace one space, at most max_chars characters.
    For display names from tokens: may come out empty (the caller picks a fallback)."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _STRIP or cat in ("Zl", "Zp"):
            out.append(" " if cat in ("Zl", "Zp") or ch in "\n\t\r" else "")
            continue
        out.append(ch)
    return " ".join("".join(out).split())[:max_chars].rstrip()
def normalise(text: str) -> str:
    """Text as matching sees it: NFKC (full-width letters and digits become ASCII),
    casefolded, every space removed. One function for everything that matches words in
    comments (a keyword draw's keyword; the moderation word filter), so that both agree on
    what "contains" means; Lua then only does a plain substring find. Control and format
    characters (zero widths, bidi marks) are dropped too, so they cannot split a word."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf"))


def take_token(tokens: float, elapsed: float, rate: float, burst: float, n: float = 1.0) -> tuple[bool, float]:
    """`n` tokens from a bucket holding `tokens`, refilled at `rate`/s for `elapsed` s up to
    `burst`: (taken, tokens left). A function, so that a connection can keep its buckets as
    two floats each instead of two more objects per viewer."""
    tokens = min(max(burst, 1.0), tokens + elapsed * rate)
    if tokens >= n:
        return True, tokens - n
    return False, tokens


class CommentSampler:
    """How many of a tick's comments every viewer is sent, at most `cap` per second.

    The same sample goes to every viewer of the room (so one encode serves them all).
    Allowance accrues with time, not per call, so ticks without comments still earn it;
    up to half a second of it is kept, so comments arriving unevenly across ticks (the
    usual case) are all shown until the room really floods past the cap. Evenly spaced
    picks keep the sample spread over the tick.
    """

    __slots__ = ("rate", "burst", "credit", "stamp")

    BURST_S = 0.5

    def __init__(self, cap_per_s: int, tick_ms: int) -> None:
        self.rate = float(cap_per_s)
        # never less than two ticks' worth, so a cap below one per tick still shows some
        self.burst = max(self.rate * self.BURST_S, 2.0 * self.rate * tick_ms / 1000.0, 1.0)
        self.credit = self.burst
        self.stamp = time.monotonic()

    def pick(self, n: int, now: float | None = None) -> list[int] | None:
        """Indices of the comments to send, or None for all of them."""
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        budget = min(self.burst, self.credit + (now - self.stamp) * self.rate)
        self.stamp = now
        if n <= budget:
            self.credit = budget - n
            return None
        k = int(budget)
        self.credit = budget - k
        if k <= 0:
            return []
        # k evenly spaced indices in range(n), always including the last (newest) comment
        return [((i + 1) * n) // k - 1 for i in range(k)]
