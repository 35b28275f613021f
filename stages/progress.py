"""A tiny progress protocol so stages report progress without importing rich or typer."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress from a stage; the CLI implements it with rich, tests with nothing."""

    def start(self, task: str, total: int | None = None) -> None: ...

    def advance(self, task: str, amount: int = 1) -> None: ...

    def done(self, task: str, message: str = "") -> None: ...

    def rate(self, task: str, text: str) -> None: ...

    def warn(self, message: str) -> None: ...


class NullProgress:
    """Progress sink that ignores everything (library and test default)."""

    def start(self, task: str, total: int | None = None) -> None:
        pass

    def advance(self, task: str, amount: int = 1) -> None:
        pass

    def done(self, task: str, message: str = "") -> None:
        pass

    def rate(self, task: str, text: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


class RecordingProgress(NullProgress):
    """Keeps the warnings, for tests that assert on them."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
