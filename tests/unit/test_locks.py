"""Per-key locks: holders of one key never overlap, also when a waiter is woken while a newcomer arrives (the
race the previous implementation had), and keys vanish once unused."""

from __future__ import annotations

import asyncio

from services.common.locks import KeyLocks


async def test_one_holder_per_key_when_a_holder_reenters_at_once() -> None:
    """A releases while B waits; before B runs, A asks again. The lock must still be B's: A waits."""
    locks: KeyLocks[str] = KeyLocks()
    holders = 0
    most = 0

    async def critical() -> None:
        nonlocal holders, most
        holders += 1
        most = max(most, holders)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        holders -= 1

    async def reenter() -> None:
        for _ in range(3):
            async with locks.hold("k"):
                await critical()

    async def wait_once() -> None:
        async with locks.hold("k"):
            await critical()

    await asyncio.gather(reenter(), wait_once(), wait_once())
    assert most == 1
    assert len(locks) == 0


async def test_distinct_keys_do_not_wait_for_each_other() -> None:
    locks: KeyLocks[str] = KeyLocks()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold_a() -> None:
        async with locks.hold("a"):
            inside.set()
            await release.wait()

    task = asyncio.create_task(hold_a())
    await inside.wait()
    async with asyncio.timeout(1):
        async with locks.hold("b"):
            pass
    release.set()
    await task
    assert len(locks) == 0
