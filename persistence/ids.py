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
    global _last_ms, _counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            _counter += 1
            if _counter >= 0x1000:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now = _last_ms
        else:
            _last_ms, _counter = now, 0
        counter = _counter
    value = (now << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | int.from_bytes(os.urandom(8)) >> 2
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def looks_like_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in _ALPHABET for c in text)
