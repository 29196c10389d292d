"""Work that builds many small Python objects runs with the cyclic garbage collector paused.

Every container object allocated (a row's tuple, a list of steps, an expression tree) counts towards the
collector's next pass, and each pass walks the young objects, sometimes all of them. Compiling a 2,000-node
journey allocates some 300,000 objects and spent a fifth of its time in the collector; a flow or a cohort over
1,000,000 events builds some 200,000 and spent 0.35-0.45 s of 1.2-1.9 s there (bench/analytics.py, person
container), though none of them hold reference cycles. Reference counting still frees everything as usual;
cycles that other code makes meanwhile are collected once the work is done.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pauses the cyclic collector for the block (also usable as a decorator). Only a caller that found it on
    turns it back on, so overlapping work in a server's threads leaves it on once the last one is done, and a
    process that turned it off keeps it off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
