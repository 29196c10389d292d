"""Reports that build many small Python objects from their rows run with the cyclic garbage collector paused.

Every container object allocated (a row's tuple, a list of steps) counts towards the collector's next pass, and
each pass walks the young objects, sometimes all of them. A flow or a cohort over 1,000,000 events builds some
200,000 of them and spent 0.35-0.45 s of 1.2-1.9 s in the collector (bench/analytics.py, person container),
though its rows hold no reference cycles. Reference counting still frees everything as usual; cycles that other
code makes meanwhile are collected once the report is done.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pauses the cyclic collector for the block (also usable as a decorator). Only a caller that found it on
    turns it back on, so overlapping reports in a server's threads leave it on once the last one is done, and
    a process that turned it off keeps it off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
