"""``built_ahead``: chunks built on a thread, handed over in order, failures re-raised."""

from __future__ import annotations

import threading

import pytest

from sweeplab.store.sql.pipeline import built_ahead


def test_chunks_come_in_order_and_complete() -> None:
    chunks = list(built_ahead(range(10), 3, list))
    assert chunks == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(built_ahead([], 3, list)) == []


def test_chunks_are_built_on_another_thread() -> None:
    builders = set()

    def build(chunk: list[int]) -> int:
        builders.add(threading.get_ident())
        return sum(chunk)

    assert list(built_ahead(range(100), 10, build)) == [
        sum(range(i, i + 10)) for i in range(0, 100, 10)
    ]
    assert builders and threading.get_ident() not in builders


def test_a_failure_while_iterating_is_raised_to_the_consumer_after_the_good_chunks() -> None:
    class BadPoint(ValueError):
        pass

    def items():
        yield from range(7)
        raise BadPoint("point 7 is bad")

    got = []
    with pytest.raises(BadPoint, match="point 7 is bad"):
        for chunk in built_ahead(items(), 3, list):
            got.append(chunk)
    assert got == [[0, 1, 2], [3, 4, 5]]  # the partial chunk [6] is never handed over


def test_a_failure_while_building_is_raised_too() -> None:
    def build(chunk: list[int]) -> list[int]:
        if 4 in chunk:
            raise KeyError("no 4")
        return chunk

    with pytest.raises(KeyError):
        list(built_ahead(range(10), 2, build))


def test_the_builder_stops_when_the_consumer_does() -> None:
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    chunks = built_ahead(endless(), 10, list)
    assert next(chunks) == list(range(10))
    chunks.close()  # the consumer stops early (a write failed, Ctrl-C)
    assert threading.active_count() == before
    assert len(produced) <= 10 * 4  # it ran no further than a few chunks ahead
