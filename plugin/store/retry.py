"""The store's one retry policy: a failed pymilvus call is mapped onto the project's
errors (`client.wrap`) and made again only when that error says `retriable`
(ServerUnavailable: Milvus down or restarting, a collection not loaded yet), with
bounded attempts and a growing wait, never past the call's own timeout.

Before waiting, `recover` may repair what failed (reload a released collection,
rebind to a client another thread reconnected, reconnect): when it did, the call is
made again at once, as the one-off reload-and-retry of #12 did.

Only calls that can be made twice with the same outcome are retried: reads,
searches, loads, and writes that are idempotent. An upsert is (rows replace the rows
with the same primary key), so are a delete by primary-key filter, a flush, a
property change and an alias switch. A plain insert (a second one duplicates rows),
creating a collection or an index, creating an alias and dropping a collection are
not (a second try fails with "already exists" / "not found" after a first one that
did reach the server): `NOT_IDEMPOTENT` lists them; they get one attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..errors import SamestyleError

NOT_IDEMPOTENT = frozenset({"insert", "create_collection", "create_index", "create_alias", "drop_collection"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # calls made at most, the first one included
    backoff_s: float = 0.2  # wait before the 2nd attempt; doubles after each, up to max_backoff_s
    max_backoff_s: float = 1.0
    # False for a probe (readiness ping): only a call that a repair fixed is made again
    # (a reconnect), never one that would wait for the server: it reports it as it is now.
    wait_for_recovery: bool = True

    def wait(self, failed: int) -> float:
        """Seconds to wait after the `failed`-th failed attempt (1-based)."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (failed - 1))


POLICY = RetryPolicy()
PROBE = RetryPolicy(attempts=2, wait_for_recovery=False)


def retrying(attempt: Callable[[float | None], object], mapped: Callable[[Exception], SamestyleError], *,
             timeout: float | None = None, idempotent: bool = True,
             recover: Callable[[Exception, SamestyleError], bool] | None = None,
             policy: RetryPolicy = POLICY, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic):
    """`attempt(left)` until it returns, at most `policy.attempts` times.

    `left` is what is left of `timeout` (None without one): the attempt passes it on as
    the call's own timeout, so retries never make a call outlast it. A failure is
    mapped by `mapped`; it is raised at once when not `retriable`, when the call is not
    `idempotent`, when the attempts are spent, or when the wait would pass the
    deadline. Otherwise `recover(exc, err)` runs (True: it repaired something, try
    again now; False: wait policy.wait(n) first, or raise under a probe policy); an
    error it raises counts as that attempt's failure."""
    deadline = None if timeout is None else clock() + timeout
    failed = 0
    while True:
        left = None if deadline is None else max(0.0, deadline - clock())
        try:
            return attempt(left)
        except Exception as exc:  # noqa: BLE001 - mapped onto the project's errors
            err = mapped(exc)
            failed += 1
            if not (err.retriable and idempotent) or failed >= policy.attempts:
                raise err from None
            wait = policy.wait(failed)
            if deadline is not None and clock() + wait >= deadline:
                raise err from None
            try:
                repaired = bool(recover and recover(exc, err))
            except Exception as again:  # noqa: BLE001
                err = mapped(again)
                if not err.retriable:
                    raise err from None
                repaired = False
            if not repaired:
                if not policy.wait_for_recovery:
                    raise err from None
                sleep(wait)
