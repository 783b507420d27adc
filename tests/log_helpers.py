"""What the ``symnas`` logger says within a block, for tests that check log lines."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def symnas_log(records: bool = False) -> Iterator[list]:
    """The messages of the ``symnas`` logger within the block, every level (DARTS logs one
    line per supernet training epoch, at DEBUG with ``quiet=True``); the ``LogRecord`` objects
    themselves with ``records=True``."""
    out: list = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = out.append if records else lambda record: out.append(record.getMessage())
    log = logging.getLogger("symnas")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
