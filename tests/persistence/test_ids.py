"""Ids: 26 Crockford characters, unique, in creation order (also past 4,096 in one millisecond)."""

from __future__ import annotations

import itertools
import time

from persistence.ids import _ALPHABET, ID_LENGTH, looks_like_id, new_id, new_ids


def _value(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + _ALPHABET.index(char)
    return value


def test_a_batch_is_unique_ordered_and_laid_out_as_uuid_v7():
    batch = new_ids(10_000)  # more than the 4,096 a millisecond's counter holds
    later = new_id()
    assert len(set(batch)) == len(batch) and batch == sorted(batch) and batch[-1] < later
    for text in (batch[0], batch[5_000], later):
        value = _value(text)
        assert len(text) == ID_LENGTH and looks_like_id(text) and value < 2**128
        assert (value >> 76) & 0xF == 0x7 and (value >> 62) & 0b11 == 0b10  # version 7, RFC 4122 variant


def test_ids_of_one_millisecond_differ_in_their_random_part():
    first, second = new_ids(2)
    assert _value(first) & (2**62 - 1) != _value(second) & (2**62 - 1)  # 62 random bits each


def test_ids_carry_their_millisecond_and_count_up_within_it():
    before = time.time_ns() // 1_000_000
    batch = new_ids(5_000)  # past one millisecond's 4,096
    after = time.time_ns() // 1_000_000
    fields = [((v := _value(text)) >> 80, (v >> 64) & 0xFFF) for text in batch]  # (millisecond, counter)
    assert before <= fields[0][0] <= after + 2
    for (ms, counter), (next_ms, next_counter) in itertools.pairwise(fields):
        assert (next_ms, next_counter) == (ms, counter + 1) or (next_ms > ms and next_counter == 0)


def test_random_bits_are_each_set_about_half_the_time():
    randoms = [_value(text) & (2**62 - 1) for text in new_ids(4_000)]
    for bit in range(62):
        share = sum((value >> bit) & 1 for value in randoms) / len(randoms)
        assert 0.4 < share < 0.6, (bit, share)
