"""The moderation word filter's cost per comment (core/wordfilter.py).

    .venv/bin/python bench/word_filter.py [--words 5000] [--comments 20000]

Builds a filter of N random 2-4 character Chinese/ASCII words plus the contact rule, then
times `find` over typical comments (~20-40 characters, a mix of Chinese, ASCII, full-width
and punctuation; one in ten contains a listed word). Prints microseconds per comment for
`find` alone, the matching form alone, and `mask` on the hits.
"""

from __future__ import annotations

import argparse
import random
import time

from liveroom.core.wordfilter import WordFilter, fast_form

HAN = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
ASCII = "abcdefghijklmnopqrstuvwxyz0123456789"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=5000)
    ap.add_argument("--comments", type=int, default=20000)
    a = ap.parse_args()
    rng = random.Random(7)
    words = ["".join(rng.choice(HAN if rng.random() < 0.8 else ASCII) for _ in range(rng.randint(2, 4))) for _ in range(a.words)]
    t0 = time.perf_counter()
    f = WordFilter(words, contacts=True)
    build_ms = (time.perf_counter() - t0) * 1000
    comments = []
    for i in range(a.comments):
        parts = [rng.choice(HAN) for _ in range(rng.randint(10, 25))]
        parts += [" ", "ＯＫ", "!", "hello", "，"]
        if i % 10 == 0:
            w = rng.choice(words)
            parts.append(" ".join(w))  # spaced out, as an evader would
        rng.shuffle(parts)
        comments.append("".join(parts))
    t0 = time.perf_counter()
    for c in comments:
        fast_form(c)
    form_us = (time.perf_counter() - t0) / len(comments) * 1e6
    t0 = time.perf_counter()
    hits = 0
    found = []
    for c in comments:
        m = f.find(c)
        if m:
            hits += 1
            found.append((c, m))
    find_us = (time.perf_counter() - t0) / len(comments) * 1e6
    t0 = time.perf_counter()
    for c, m in found:
        f.mask(c, m)
    mask_us = (time.perf_counter() - t0) / max(len(found), 1) * 1e6
    avg_len = sum(map(len, comments)) / len(comments)
    print(f"{a.words} words (+contact rule), build {build_ms:.0f} ms; {a.comments} comments of {avg_len:.0f} chars, {hits} with a match")
    print(f"find: {find_us:.1f} us/comment (of which matching form {form_us:.1f} us); mask: {mask_us:.1f} us/hit")


if __name__ == "__main__":
    main()
