"""Engine restarts with backoff, and the rule that a document's newest request wins."""

from __future__ import annotations

import asyncio

MAX_BACKOFF_S = 300.0


def backoff_delay(attempt: int, base_s: float, cap_s: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before restart number ``attempt`` (1-based): base, 2·base, 4·base, … capped."""
    if attempt < 1:
        return 0.0
    return min(cap_s, base_s * 2 ** (attempt - 1))


def restart_plan(failures: int, max_attempts: int, base_s: float) -> float | None:
    """The wait before the next restart after ``failures`` failures in a row, or None: give up."""
    if failures > max_attempts:
        return None
    return backoff_delay(failures, base_s)


class LatestPerDocument:
    """One completion per document: a newer request cancels the one still running.

    An editor asks again at every keystroke; the older answer is for text that no longer
    exists, and on two cores it would delay the answer the user is waiting for. Entries live
    only while a request runs, so the table is bounded by the requests in flight.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task] = {}
        self.superseded = 0
        self.held = 0

    def claim(self, uri: str, task: asyncio.Task) -> None:
        older = self._running.get(uri)
        if older is not None and older is not task and not older.done():
            older.cancel()
            self.superseded += 1
        self._running[uri] = task

    def release(self, uri: str, task: asyncio.Task) -> None:
        if self._running.get(uri) is task:
            del self._running[uri]

    def cancel(self, uri: str) -> None:
        """The document closed: its request has nothing left to complete."""
        task = self._running.pop(uri, None)
        if task is not None and not task.done():
            task.cancel()

    def __len__(self) -> int:
        return len(self._running)
