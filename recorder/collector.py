"""Python's cyclic garbage collector paused around batch work on large files.

Building the OME-XML of, grading or recovering a file of 100,000 planes makes millions of
small objects, none of them in a reference cycle that outlives the call; the full
collections their allocation triggers walk all of them again and again. Measured at
100,000 planes: building the XML 1.1-1.3 s with the collector, 0.6-0.75 s without;
``validate`` 15.7 s → 10.5 s; ``recover`` 7.6 s → 6.0 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (a decorator too); it is enabled
    again afterwards only if it was enabled before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
