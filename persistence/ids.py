"""Opaque, unguessable, time-ordered ids (UUIDv7 layout, Crockford base32 text)."""

from __future__ import annotations

import os
import struct
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
    stamps = []
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            _last_ms, _counter = now, -1
        millisecond, counter = _last_ms, _counter
        for _ in range(count):
            counter += 1
            if counter >= 0x1000:  # counter exhausted: borrow the next millisecond
                millisecond, counter = millisecond + 1, 0
            stamps.append((millisecond << 80) | _VERSION_AND_VARIANT | (counter << 64))
        _last_ms, _counter = millisecond, counter
    randoms = struct.unpack(f">{count}Q", os.urandom(8 * count))
    return [_encode(stamp | (random >> 2)) for stamp, random in zip(stamps, randoms, strict=True)]


_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


# Two characters (10 bits) per lookup: 13 lookups make the 26 characters of a 130-bit value.
_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]
_SHIFTS = tuple(range(120, -10, -10))


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def looks_like_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
