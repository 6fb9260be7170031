"""The store's one retry policy (samestyle.store.retry) with the store's real error
mapping (samestyle.store.client.wrap) over pymilvus' own exception type: which
failures are retried, how often, with which waits, and never past the call's timeout.
The calls are fakes that fail as Milvus does; no server is involved."""

from __future__ import annotations

import pytest
from pymilvus.exceptions import MilvusException

from samestyle.errors import ServerUnavailable, StoreError
from samestyle.store.client import CollectionNotFound, wrap
from samestyle.store.retry import NOT_IDEMPOTENT, POLICY, PROBE, RetryPolicy, retrying

DOWN = MilvusException(code=2, message="failed to connect to all addresses; last error: UNAVAILABLE")
RELEASED = MilvusException(code=101, message="collection products_v1 is in state 'released'")
MISSING = MilvusException(code=100, message="can't find collection[database=default][collection=nope]")
BAD = MilvusException(code=1100, message="invalid expression: brand ==")


def mapped(exc):
    return wrap(exc, "search", "products")


class Clock:
    """time.monotonic / time.sleep stand-ins: sleeping moves the clock."""

    def __init__(self):
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.waits.append(s)
        self.now += s


def failing(*errors, result="ok"):
    """A call that raises `errors` in turn, then returns `result`; records each `left`."""
    lefts: list = []

    def attempt(left):
        lefts.append(left)
        if len(lefts) <= len(errors):
            raise errors[len(lefts) - 1]
        return result

    attempt.lefts = lefts
    return attempt


def run(attempt, clock, **kw):
    return retrying(attempt, mapped, sleep=clock.sleep, clock=clock, **kw)


@pytest.mark.parametrize("exc", [DOWN, RELEASED], ids=["server_down", "not_loaded"])
def test_a_retriable_failure_is_made_again_after_a_wait(exc):
    assert mapped(exc).retriable and isinstance(mapped(exc), ServerUnavailable)
    clock, attempt = Clock(), failing(exc)
    assert run(attempt, clock) == "ok"
    assert len(attempt.lefts) == 2 and clock.waits == [POLICY.wait(1)]


@pytest.mark.parametrize("exc,kind", [(BAD, StoreError), (MISSING, CollectionNotFound)], ids=["store_error", "missing"])
def test_a_failure_that_is_not_retriable_is_raised_at_once(exc, kind):
    clock, attempt = Clock(), failing(exc)
    with pytest.raises(kind) as err:
        run(attempt, clock)
    assert not err.value.retriable and len(attempt.lefts) == 1 and clock.waits == []


def test_a_call_that_is_not_idempotent_gets_one_attempt():
    assert {"insert", "create_collection", "create_index"} <= NOT_IDEMPOTENT and "upsert" not in NOT_IDEMPOTENT
    clock, attempt = Clock(), failing(DOWN)
    with pytest.raises(ServerUnavailable):
        run(attempt, clock, idempotent=False)
    assert len(attempt.lefts) == 1 and clock.waits == []


def test_attempts_are_bounded_and_the_wait_grows_to_its_cap():
    policy = RetryPolicy(attempts=5, backoff_s=0.2, max_backoff_s=0.5)
    clock, attempt = Clock(), failing(*[DOWN] * 5)
    with pytest.raises(ServerUnavailable) as err:
        run(attempt, clock, policy=policy)
    assert err.value.to_dict()["code"] == "server_unavailable" and err.value.fix
    assert len(attempt.lefts) == 5 and clock.waits == [0.2, 0.4, 0.5, 0.5]


def test_retries_stay_within_the_calls_timeout():
    """Each attempt is given what is left of the timeout; no wait runs past it."""
    clock, attempt = Clock(), failing(*[DOWN] * 5)
    policy = RetryPolicy(attempts=10, backoff_s=0.2, max_backoff_s=1.0)
    with pytest.raises(ServerUnavailable):
        run(attempt, clock, timeout=1.0, policy=policy)
    assert attempt.lefts == pytest.approx([1.0, 0.8, 0.4])  # 0.2 + 0.4 waited; a 0.8 s wait would pass 1.0
    assert sum(clock.waits) < 1.0


def test_without_a_timeout_the_call_keeps_its_own():
    clock, attempt = Clock(), failing(DOWN)
    assert run(attempt, clock) == "ok" and attempt.lefts == [None, None]


def test_a_repair_is_tried_at_once_and_nothing_repaired_waits():
    seen = []

    def recover(exc, err):
        seen.append((exc.code, type(err).__name__))
        return exc is RELEASED  # "loaded it again"

    clock, attempt = Clock(), failing(RELEASED, DOWN)
    assert run(attempt, clock, recover=recover) == "ok"
    assert seen == [(101, "ServerUnavailable"), (2, "ServerUnavailable")] and clock.waits == [POLICY.wait(2)]


def test_a_repair_that_fails_is_mapped_like_the_call():
    def recover(exc, err):
        raise MISSING  # the collection was dropped while it was being reloaded

    clock, attempt = Clock(), failing(RELEASED)
    with pytest.raises(CollectionNotFound):
        run(attempt, clock, recover=recover)
    assert len(attempt.lefts) == 1


def test_a_probe_is_made_again_only_after_a_repair():
    """PROBE (the readiness ping) reports the server as it is: a reconnect that worked
    is tried again at once, nothing is waited for."""
    clock, attempt = Clock(), failing(DOWN)
    with pytest.raises(ServerUnavailable):
        run(attempt, clock, policy=PROBE, recover=lambda exc, err: False)
    assert len(attempt.lefts) == 1 and clock.waits == []
    clock, attempt = Clock(), failing(DOWN)
    assert run(attempt, clock, policy=PROBE, recover=lambda exc, err: True) == "ok" and len(attempt.lefts) == 2
