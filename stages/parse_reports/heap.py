"""Keep Python's cyclic garbage collector out of the parse.

Every report allocates thousands of short-lived objects, so the collector runs often, and its full
passes walk the whole spaCy vocabulary, lexicon and matcher tables each time: about a quarter of the
parse time. ``gc.freeze`` moves the objects alive at the start of a batch out of the collector's view;
they are handed back when the batch ends, so nothing outside the batch sees a change.

Parsing itself makes no reference cycles (a test checks): reference counting frees everything it
allocates, and the collector's young-generation passes over a batch of reports only cost time (about 5%
of the parse). :func:`collector_paused` turns the collector off for one batch and back on after it.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def static_heap_frozen() -> Iterator[None]:
    """Within the block, objects older than the block are not scanned by the garbage collector."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Within the block, the cyclic garbage collector does not run (it is restored after, as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
