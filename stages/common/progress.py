"""A tiny progress interface so stage logic stays free of any UI library.

Stages call ``reporter.start(total, description)`` then ``reporter.advance(...)``;
the CLI passes a rich implementation, Python users get the silent default.
"""
from __future__ import annotations

from typing import Any, Protocol


class ProgressReporter(Protocol):
    def start(self, total: int, description: str) -> None: ...

    def advance(self, step: int = 1, **fields: Any) -> None: ...


class SilentProgress:
    """Default reporter: reports nothing."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, step: int = 1, **fields: Any) -> None:
        pass
