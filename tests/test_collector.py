"""The cycle collector pause around reports and the compiler: off inside, back on after (even on error), never
turned on when the process had turned it off."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine.collector import cycle_collector_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_inside_and_on_again_after() -> None:
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_on_again_after_an_error() -> None:
    with pytest.raises(ValueError), cycle_collector_paused():
        raise ValueError("report failed")
    assert gc.isenabled()


def test_a_process_that_turned_it_off_keeps_it_off() -> None:
    gc.disable()
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_reports_leave_it_on_when_the_first_ends_last() -> None:
    first, second = cycle_collector_paused(), cycle_collector_paused()
    first.__enter__()
    second.__enter__()
    second.__exit__(None, None, None)
    assert not gc.isenabled()  # the first report is still running
    first.__exit__(None, None, None)
    assert gc.isenabled()


def test_as_a_decorator() -> None:
    @cycle_collector_paused()
    def report() -> bool:
        return gc.isenabled()

    assert report() is False
    assert report() is False  # a fresh pause on every call
    assert gc.isenabled()
