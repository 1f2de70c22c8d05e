"""The engine's lifecycle inside the server: load in the background, report `$/progress`,
restart with backoff after a failure, notice a dead engine process, reload on engine settings.

States: idle → loading → ready | failed → restarting → loading … Requests made while the engine
is not ready get an empty answer at once (the request service asks ``ready``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Callable

from lsprotocol import types

from completer.server.supervisor import backoff_delay, restart_plan

if TYPE_CHECKING:
    from completer.engine.interface import Engine
    from completer.pipeline import Completer
    from completer.server.app import CompleterServer

log = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 1.0  # how often a ready engine is checked for a dead engine process


class EngineHost:
    """Owns the one engine and the Completer bound to it; ``server`` gives settings and the client."""

    def __init__(self, server: "CompleterServer") -> None:
        self.server = server
        self.engine: Engine | None = None
        self.completer: Completer | None = None
        self.state = "idle"  # idle → loading → ready | failed | restarting
        self.error: str | None = None
        self.failures = 0  # engine loads failed or engines died, in a row
        self.restarts = 0  # restarts after a failure, in total
        self.next_restart_s: float | None = None
        self._load_task: asyncio.Task | None = None

    @property
    def ready(self) -> bool:
        return self.completer is not None

    def start(self, *, delay_s: float = 0.0, after_failure: bool = False) -> None:
        """(Re)load the engine in the background; requests meanwhile get empty results."""
        if self._load_task and not self._load_task.done() and self._load_task is not asyncio.current_task():
            self._load_task.cancel()
        if not after_failure:
            self.failures = 0
        if self.state == "ready":
            self.state = "loading"  # clients must not see "ready" while the old engine goes
        self._load_task = asyncio.ensure_future(self._load(delay_s))

    def stop_restarting(self) -> None:
        """At shutdown: no load or restart may start after this."""
        if self._load_task is not None:
            self._load_task.cancel()

    def shutdown(self) -> None:
        """Shut the engine's processes down (blocking; idempotent)."""
        if self.engine is not None:
            self.engine.shutdown()
            self.engine, self.completer = None, None

    def died(self) -> None:
        """vLLM's engine process is gone, or a remote engine's server stopped answering (its ``failure``
        says why): drop the engine and restart (reconnect) it with backoff (idempotent)."""
        engine = self.engine
        if engine is None or self.state != "ready":
            return
        self.engine, self.completer = None, None
        asyncio.ensure_future(asyncio.to_thread(engine.shutdown))
        self._failed("the engine stopped unexpectedly", getattr(engine, "failure", None) or "its process exited")

    async def watch(self) -> None:
        """Notice a dead engine even while no request runs."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            if self.engine is not None and self.state == "ready" and self.engine.dead:
                self.died()

    def as_dict(self) -> dict:
        """The lifecycle part of `completer/stats`."""
        return {"engine": self.state, "error": self.error, "engine_failures": self.failures,
                "engine_restarts": self.restarts, "next_restart_s": self.next_restart_s,
                "engine_pids": self.engine.engine_pids() if self.engine is not None else []}

    def _failed(self, what: str, err: str) -> None:
        """Report a failure once per series, then restart with backoff until the attempts run out."""
        settings = self.server.settings
        self.failures += 1
        self.state, self.error = "failed", err
        # a remote server comes back by itself (restarted, redeployed): keep reconnecting, backing off
        delay = backoff_delay(self.failures, settings.engine_restart_backoff_s) if settings.engine_url else \
            restart_plan(self.failures, settings.engine_restart_attempts, settings.engine_restart_backoff_s)
        if delay is None:
            self.next_restart_s = None
            log.error("%s: %s; giving up after %d attempts", what, err, self.failures)
            self.server.show(types.MessageType.Error, f"completer: {what}: {err}. Gave up after {self.failures} "
                             "attempts; completions stay empty until the settings change or the server restarts.")
            return
        self.next_restart_s = delay
        log.error("%s: %s; restart %d in %.1f s", what, err, self.failures, delay)
        if self.failures == 1:
            retry = f"reconnecting in {delay:g} s, then with backoff" if settings.engine_url else \
                f"restarting in {delay:g} s (at most {settings.engine_restart_attempts} attempts)"
            self.server.show(types.MessageType.Error, f"completer: {what}: {err}. Completions are empty meanwhile; "
                             f"{retry}.")
        self.restarts += 1
        self.start(delay_s=delay, after_failure=True)

    async def _load(self, delay_s: float = 0.0) -> None:
        from completer.engine import start_engine
        from completer.pipeline import Completer

        old, self.engine, self.completer = self.engine, None, None
        if old is not None:
            await asyncio.to_thread(old.shutdown)
        if delay_s:
            self.state = "restarting"
            await asyncio.sleep(delay_s)
        self.next_restart_s = None
        self.state = "loading"
        settings = self.server.settings
        progress = await self._begin_progress("completer: loading models")
        loop = asyncio.get_running_loop()

        def report(message: str, fraction: float | None) -> None:
            loop.call_soon_threadsafe(progress, message, fraction)

        try:
            engine = await asyncio.to_thread(start_engine, settings, report)
        except Exception as err:
            progress("failed", 1.0, end=True)
            self._failed("the engine could not start", str(err))
            return
        self.engine = engine
        self.completer = Completer(engine, settings)
        self.state, self.error = "ready", None
        log.info("engine ready: %s", engine.describe())
        progress("ready", 1.0, end=True)
        if self.failures:
            self.server.show(types.MessageType.Info, f"completer: the engine is running again (after "
                             f"{self.failures} failure{'s' if self.failures > 1 else ''})")
            self.failures = 0

    async def _begin_progress(self, title: str) -> Callable[..., None]:
        """A `$/progress` reporter, or a log-only one when the client does not support it."""
        server = self.server
        caps = server.client_capabilities
        supported = bool(caps and caps.window and caps.window.work_done_progress)
        token = f"completer-load-{uuid.uuid4()}"
        if supported:
            try:
                await asyncio.wait_for(server.work_done_progress.create_async(token), timeout=5)
                server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, percentage=0,
                                                                                   cancellable=False))
            except Exception as err:
                log.debug("client refused progress: %s", err)
                supported = False

        def progress(message: str, fraction: float | None, end: bool = False) -> None:
            log.info("%s: %s%s", title, message, f" ({fraction:.0%})" if fraction is not None else "")
            if not supported:
                return
            if end:
                server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
            else:
                pct = int(fraction * 100) if fraction is not None else None
                server.work_done_progress.report(token, types.WorkDoneProgressReport(message=message,
                                                                                     percentage=pct))

        return progress
