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


def new_ids(count: int) -> list[str]:
    """`count` ids in creation order, for the price of one clock read and one call for random bytes
    (an event batch needs 500)."""
    global _last_ms, _counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _counter = now, -1
        stamps = []
        for _ in range(count):
            _counter += 1
            if _counter >= 0x1000:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            stamps.append((_last_ms << 80) | (0x7 << 76) | (_counter << 64) | (0b10 << 62))
    random = os.urandom(8 * count)
    return [_encode(stamp | int.from_bytes(random[8 * i:8 * i + 8]) >> 2) for i, stamp in enumerate(stamps)]


# Two characters (10 bits) per lookup: 13 lookups make the 26 characters of a 130-bit value.
_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]
_SHIFTS = tuple(range(120, -10, -10))


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def looks_like_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
