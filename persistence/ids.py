"""Opaque, unguessable, time-ordered ids (UUIDv7 layout, Crockford base32 text)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_lock = threading.Lock()
_last_ms = 0
_counter = 0

ID_LENGTH = 26


def new_id() -> str:
    """48 bits of milliseconds, a 12-bit in-millisecond counter, 62 random bits.

    Inserts land at the end of indexes (a random key halves SQLite insert speed), ids made in one
    process sort in creation order, and 62 random bits keep them unguessable.
    """
    return new_ids(1)[0]


# The 130 bits of the 26 characters, 5 per character, most significant first:
#   characters  0-9   two zero bits and the 48 bits of milliseconds
#   characters 10-12  the version (0111) and the counter's top 11 bits
#   character  13     the counter's lowest bit, the variant (10) and 2 random bits
#   characters 14-25  60 random bits
# Each part is written as text on its own (the random ones straight from random bytes), so a batch
# of 500 ids costs a few string joins per id rather than big-integer arithmetic.
_COUNTER_TEXT = [_ALPHABET[(0x7 << 1) | (c >> 11)] + _ALPHABET[(c >> 6) & 31] + _ALPHABET[(c >> 1) & 31]
                 for c in range(0x1000)]
# (counter's lowest bit, a random byte) -> character 13: the byte's two low bits are its random bits.
_CHARACTER_13 = [[_ALPHABET[(low << 4) | 0b1000 | (byte & 3)] for byte in range(256)] for low in (0, 1)]
# A random byte -> a random character (256 is a multiple of 32, so each is equally likely).
_RANDOM_CHARACTER = bytes.maketrans(bytes(range(256)), "".join(_ALPHABET[b & 31] for b in range(256)).encode())


def _millisecond_text(millisecond: int) -> str:
    return "".join(_ALPHABET[(millisecond >> shift) & 31] for shift in range(45, -5, -5))


def new_ids(count: int) -> list[str]:
    """`count` ids in creation order, for the price of one clock read and one call for random bytes
    (an event batch needs 500)."""
    global _last_ms, _counter
    runs: list[tuple[int, int, int]] = []  # (millisecond, first counter, how many)
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _counter = now, -1
        millisecond, counter, left = _last_ms, _counter + 1, count
        while left:
            if counter >= 0x1000:  # counter exhausted: borrow the next millisecond
                millisecond, counter = millisecond + 1, 0
            taken = min(left, 0x1000 - counter)
            runs.append((millisecond, counter, taken))
            counter, left = counter + taken, left - taken
        _last_ms, _counter = millisecond, counter - 1
    random = os.urandom(13 * count)
    text = random[count:].translate(_RANDOM_CHARACTER).decode()  # 12 random characters per id
    ids: list[str] = []
    position = 0
    for millisecond, first, taken in runs:
        prefix = _millisecond_text(millisecond)
        ids += [prefix + _COUNTER_TEXT[c] + _CHARACTER_13[c & 1][random[i]] + text[12 * i:12 * i + 12]
                for i, c in enumerate(range(first, first + taken), start=position)]
        position += taken
    return ids


def looks_like_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
