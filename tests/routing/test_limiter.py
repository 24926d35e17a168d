"""Concurrency limits: the cap holds, waits are bounded and fair, cancellation leaks nothing."""

from __future__ import annotations

import asyncio

import pytest

from tiergate.routing.limiter import (
    SEED_DEFAULTS,
    Limiter,
    QueueFull,
    QueueTimeout,
    defaults_for,
)


async def test_hundred_tasks_through_a_limit_of_two() -> None:
    limiter = Limiter(2, queue_timeout_s=5.0)
    active = peak = done = 0

    async def one() -> None:
        nonlocal active, peak, done
        async with limiter:
            active += 1
            peak = max(peak, active)
            assert limiter.in_flight <= 2
            await asyncio.sleep(0.001)
            active -= 1
            done += 1

    await asyncio.gather(*(one() for _ in range(100)))
    assert (peak, done) == (2, 100)
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


async def test_waiters_time_out_with_queue_timeout() -> None:
    limiter = Limiter(1, queue_timeout_s=0.02, name="gpu")
    await limiter.acquire()
    with pytest.raises(QueueTimeout) as info:
        await limiter.acquire()
    err = info.value
    assert isinstance(err, asyncio.TimeoutError)
    assert not isinstance(err, QueueFull)
    assert "gpu" in err.message and "busy" in err.message
    assert err.in_flight == 1 and err.waited_s >= 0.015
    assert (limiter.in_flight, limiter.waiting) == (1, 0)
    limiter.release()
    assert limiter.in_flight == 0
    await asyncio.wait_for(limiter.acquire(), 1.0)  # the slot is usable again


async def test_per_call_timeout_overrides_the_default() -> None:
    limiter = Limiter(1, queue_timeout_s=60.0)
    await limiter.acquire()
    with pytest.raises(QueueTimeout):
        await limiter.acquire(timeout_s=0.01)
    with pytest.raises(QueueTimeout):
        await limiter.acquire(timeout_s=0)  # no wait at all
    limiter.release()


async def test_waiters_are_bounded() -> None:
    limiter = Limiter(1, queue_timeout_s=5.0, max_waiters=3)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert limiter.waiting == 3
    with pytest.raises(QueueFull) as info:
        await limiter.acquire()  # refused at once, no wait
    assert info.value.waited_s == 0.0 and info.value.waiting == 3
    for _ in range(4):
        limiter.release()
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


async def test_fifo_order_and_no_barging() -> None:
    limiter = Limiter(1, queue_timeout_s=5.0)
    order: list[int] = []
    await limiter.acquire()

    async def one(i: int) -> None:
        async with limiter:
            order.append(i)
            await asyncio.sleep(0)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # queue them in a known order
    limiter.release()
    # A newcomer arriving right after the release must queue behind the five.
    late = asyncio.create_task(one(99))
    await asyncio.gather(*tasks, late)
    assert order == [0, 1, 2, 3, 4, 99]


async def test_cancelled_waiter_releases_nothing_twice() -> None:
    limiter = Limiter(1, queue_timeout_s=5.0)
    await limiter.acquire()
    w1 = asyncio.create_task(limiter.acquire())
    w2 = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    w1.cancel()
    with pytest.raises(asyncio.CancelledError):
        await w1
    assert limiter.waiting == 1
    limiter.release()  # goes to w2, not to the cancelled w1
    await asyncio.wait_for(w2, 1.0)
    assert (limiter.in_flight, limiter.waiting) == (1, 0)
    limiter.release()
    assert limiter.in_flight == 0
    with pytest.raises(RuntimeError):
        limiter.release()


async def test_waiter_cancelled_just_after_being_handed_a_slot_passes_it_on() -> None:
    limiter = Limiter(1, queue_timeout_s=5.0)
    await limiter.acquire()
    w1 = asyncio.create_task(limiter.acquire())
    w2 = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # hands the slot to w1 ...
    w1.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await w1
    await asyncio.wait_for(w2, 1.0)  # w1's slot went on to w2
    assert (limiter.in_flight, limiter.waiting) == (1, 0)
    limiter.release()
    assert limiter.in_flight == 0


async def test_many_cancellations_and_timeouts_leak_no_slot() -> None:
    limiter = Limiter(3, queue_timeout_s=0.01)
    seen_peak = 0

    async def user(i: int) -> None:
        nonlocal seen_peak
        try:
            async with limiter:
                seen_peak = max(seen_peak, limiter.in_flight)
                await asyncio.sleep(0.002 * (i % 4))
        except QueueTimeout:
            pass

    tasks = [asyncio.create_task(user(i)) for i in range(200)]
    await asyncio.sleep(0.004)
    for t in tasks[::3]:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert seen_peak <= 3
    assert (limiter.in_flight, limiter.waiting) == (0, 0)
    for _ in range(3):  # all three slots are still there
        await asyncio.wait_for(limiter.acquire(), 0.5)


def test_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        Limiter(0, 1.0)


# ---------------------------------------------------------------------------- seed defaults
def test_defaults_for_reads_the_seed_variables() -> None:
    env = {"MAX_CONCURRENT_LOCAL": "2", "MAX_CONCURRENT_API": "10", "LOCAL_TIMEOUT_SEC": "10",
           "API_TIMEOUT_SEC": "30.5"}
    assert defaults_for("local", env) == (2, 10.0)
    assert defaults_for("sovereign", env) == (10, 30.5)
    assert defaults_for("cloud", env) == (10, 30.5)
    assert defaults_for("local", {}) == (None, None)
    assert defaults_for("cloud", {"MAX_CONCURRENT_API": " "}) == (None, None)
    assert defaults_for("local", {**SEED_DEFAULTS, "LOCAL_TIMEOUT_SEC": "120"}) == (2, 120.0)


@pytest.mark.parametrize(
    "env", [{"MAX_CONCURRENT_LOCAL": "0"}, {"MAX_CONCURRENT_LOCAL": "two"}, {"LOCAL_TIMEOUT_SEC": "-1"},
            {"LOCAL_TIMEOUT_SEC": "nan"}, {"LOCAL_TIMEOUT_SEC": "soon"}],
)
def test_defaults_for_names_the_bad_variable(env: dict[str, str]) -> None:
    with pytest.raises(ValueError) as info:
        defaults_for("local", env)
    assert next(iter(env)) in str(info.value)
