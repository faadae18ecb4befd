"""The fast path's background attacher: requests held back while they keep coming (CNI ADDs first, then the
RTNL-holding attachments), never longer than the maximum delay, coalesced per device, and settle() waits for
none of that. Real threads; the handler only records what it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from services.vppagent.drivers.linux.fastpath.deferred import Deferred


class Recorder:
    def __init__(self) -> None:
        self.batches: list[dict[int, str | None]] = []
        self.handled = threading.Event()

    def __call__(self, batch: dict[int, str | None]) -> None:
        self.batches.append(batch)
        self.handled.set()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@contextmanager
def deferred(recorder: Recorder, quiet_s: float, max_delay_s: float) -> Iterator[Deferred[str]]:
    d: Deferred[str] = Deferred(recorder, quiet_s=quiet_s, max_delay_s=max_delay_s)
    try:
        yield d
    finally:
        d.close()


def test_requests_wait_for_a_quiet_moment_and_coalesce_per_device(recorder: Recorder) -> None:
    with deferred(recorder, quiet_s=1.0, max_delay_s=30) as d:
        d.put(7, "port-7")
        d.put(8, "port-8")
        d.put(7, None)  # the port went away before its attach ran: only the forget is left
        assert not recorder.handled.wait(0.1)  # requests are still coming: held back
        assert d.busy_with(7) and d.busy_with(8) and not d.busy_with(9)
        assert recorder.handled.wait(5)
        assert recorder.batches == [{7: None, 8: "port-8"}]
        assert not d.busy_with(8)


def test_a_steady_stream_is_handled_within_the_maximum_delay(recorder: Recorder) -> None:
    """Requests keep coming (one every 20 ms, never the 30 s pause asked for): the first is handled anyway, its
    maximum delay counted from the first request (counted from the newest, it would wait for ever)."""
    with deferred(recorder, quiet_s=30, max_delay_s=0.2) as d:
        started = time.monotonic()
        d.put(1, "port-1")
        index = 2
        while not recorder.handled.is_set() and time.monotonic() - started < 5:
            time.sleep(0.02)
            d.put(index, f"port-{index}")
            index += 1
        assert recorder.handled.is_set()  # while the stream still went on
        assert recorder.batches[0][1] == "port-1"


def test_settle_does_not_hold_back_and_close_drops_the_rest(recorder: Recorder) -> None:
    with deferred(recorder, quiet_s=30, max_delay_s=30) as d:
        d.put(1, "port-1")
        assert d.settle(5) and recorder.batches == [{1: "port-1"}]
        d.put(2, "port-2")
    assert recorder.batches == [{1: "port-1"}]  # closed while port-2 was held back: the resync's job


def test_a_failing_handler_does_not_stop_the_thread(recorder: Recorder) -> None:
    calls: list[dict[int, str | None]] = []

    def flaky(batch: dict[int, str | None]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("kernel said no (unit test)")

    d: Deferred[str] = Deferred(flaky, quiet_s=0, max_delay_s=0)
    try:
        d.put(1, "a")
        assert d.settle(5)
        d.put(2, "b")
        assert d.settle(5) and calls == [{1: "a"}, {2: "b"}]
    finally:
        d.close()
