"""Running a service until SIGTERM/SIGINT, with every long-lived task owned and cancelled on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("multinet.lifecycle")


class TaskGroup:
    """Background tasks a service owns: a crash is logged (never silently lost) and all are cancelled on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task died", extra={"task": task.get_name()}, exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_until_signalled(
    start: Callable[[], Awaitable[Any]], stop: Callable[[], Awaitable[Any]], on_ready: Callable[[], None] | None = None
) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await start()
        if on_ready is not None:
            on_ready()
        await stopping.wait()
        log.info("stopping")
    finally:
        await stop()
