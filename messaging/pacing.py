"""Exact pacing for one transport code.

The rule (docs/spec.md section 10): in any one-second window a code never carries more than its
messages (or segments) per second. The :class:`Pacer` hands out start times that keep it:

* a grid spaces texts evenly, ``cost / rate`` apart, so a busy code runs at its full rate
  with no bursts and no idle gaps;
* a sliding window over the times actually handed out is the hard limit: however late a
  slot is taken (a slow database, a long carrier call), no window holds more than ``rate``.
  The window is ``1 s + margin`` long, so jitter of up to ``margin`` between our clock and the
  carrier's arrival times cannot push a window over the limit either.

A single text that costs more than the whole rate (a 3-segment text on a 1 segment/s code) is
allowed into an empty window; the grid then keeps the average at the rate.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from fractions import Fraction

CATCH_UP = 0.5


class Pacer:
    """Start times for one code's texts. Not shared between threads: one sender owns it.

    Use: ``time.sleep(pacer.wait_time(cost))``, then (with nothing slow in between)
    ``pacer.take(cost)`` and start the carrier call. The window is checked again at ``take`` on
    the real clock, so waking late can never crowd a window; the grid remembers the ideal
    timeline, so small wake-up delays are made up and the mean rate stays exact.
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.015,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.window = 1.0 + margin
        self.clock = clock
        self._sent: collections.deque[tuple[float, float]] = collections.deque()
        self._in_window = 0.0
        self._grid = 0.0

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds from now until a text of ``cost`` may start (0 if it may start now)."""
        now = self.clock()
        return max(0.0, self._earliest(now, cost) - now)

    def take(self, cost: float = 1.0) -> float:
        """Record a start now. Call only when :meth:`wait_time` says 0. Returns the time."""
        now = self.clock()
        ideal = self._earliest(now, cost)
        if ideal > now + 1e-6:
            raise RuntimeError(f"take() {ideal - now:.3f} s too early")
        # Make up a late wake-up of up to CATCH_UP seconds (the window still caps what that
        # sends); after a longer gap the grid restarts, so idle time is never saved up.
        slot = self._grid if now - self._grid <= CATCH_UP else now
        self._sent.append((now, cost))
        self._in_window += cost
        self._grid = slot + cost / self.rate
        return now

    def _earliest(self, now: float, cost: float) -> float:
        # After an idle spell the grid restarts at now: unused capacity is not saved up.
        start = max(now, self._grid)
        self._expire(start)
        if self._in_window + cost <= self.rate + 1e-9 or not self._sent:
            return start
        # Move to just after the oldest entries leave the window, until the text fits.
        freed = self._in_window
        for sent_at, sent_cost in self._sent:
            freed -= sent_cost
            if freed + cost <= self.rate + 1e-9 or freed <= 1e-9:
                return max(start, sent_at + self.window)
        return start

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self.window:
            self._in_window -= self._sent.popleft()[1]
        if not self._sent:
            self._in_window = 0.0

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (the carrier asked us to slow down)."""
        self._grid = max(self._grid, self.clock() + seconds)


class StartGate:
    """The hard window again, at the moment each request really starts.

    The :class:`Pacer` decides when a slot's texts go; the backend starts their requests a
    little later, on its event loop or in its threads, and on a busy machine that delay varies
    (we measured up to ~0.5 s with 2 saturated cores): slots handed over on time could then
    start bunched, over the limit. So the backend passes every text through the code's gate
    right before its request starts, and the gate holds it back while the last ``window``
    seconds of real starts already carry the rate. No grid here: it only ever delays.
    Thread-safe; one gate per code, shared by the backend's tasks or threads.

    It also keeps starts at least ``spread / rate`` seconds apart. Without that, a slot's texts
    (up to half a second of the rate) started together, and a carrier counting arrivals saw
    parts of three such bursts in one second once a few tens of ms of jitter delayed one
    burst's tail: 150 in a second at 100/s (bench/dispatch.py, docs/performance.md). Half the
    even spacing, not all of it, so that starts that fell behind can still catch up.
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.015,
        spread: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.window = 1.0 + margin
        self.spread = spread
        self._next_start = float("-inf")  # no start before this (the spacing)
        self.clock = clock
        # [start, cost] pairs, oldest first; a list so that :meth:`left` can move a start.
        self._sent: collections.deque[list[float]] = collections.deque()
        self._in_window = 0.0
        self._lock = threading.Lock()
        self.started_at = 0.0

        #: The cost of all texts started through the gate so far (the sender compares it with
        #: what it handed over, to keep few texts waiting between their guards and their start).
        self.started = 0.0
        self._async_lock: asyncio.Lock | None = None  # one event loop uses a gate

    def set_rate(self, rate: float) -> None:
        self.rate = float(rate)

    def try_take(self, cost: float = 1.0) -> float:
        """Record a start now and return 0 if the window has room, else the seconds to wait.
        After a 0, :attr:`started_at` is that start on the wall clock (for the record)."""
        return self._take(cost)[0]

    def _take(self, cost: float) -> tuple[float, list[float] | None]:
        """:meth:`try_take`, also returning the recorded start (for :meth:`left`)."""
        with self._lock:
            now = self.clock()
            while self._sent and self._sent[0][0] <= now - self.window:
                self._in_window -= self._sent.popleft()[1]
            if not self._sent:
                self._in_window = 0.0
            # A text costlier than the whole rate may go into an empty window (as in Pacer).
            if self._in_window + cost > self.rate + 1e-9 and self._sent:
                freed = self._in_window
                for sent_at, sent_cost in self._sent:
                    freed -= sent_cost
                    if freed + cost <= self.rate + 1e-9 or freed <= 1e-9:
                        return max(1e-4, sent_at + self.window - now), None
            if now < self._next_start:
                return max(1e-4, self._next_start - now), None
            start = [now, cost]
            self._sent.append(start)
            self._in_window += cost
            self._next_start = now + self.spread * cost / self.rate
            self.started_at = time.time()
            self.started += cost
            return 0.0, start

    def left(self, start: list[float]) -> None:
        """The text of ``start`` (from :meth:`enter_async`) really left only now: count it
        in the window from now instead of from its start.

        The carrier counts arrivals, and a busy machine can hold a request for tens of ms
        between the gate and the socket (p99 80 ms, max 0.5 s with the journey's processes on
        two cores: docs/performance.md). Counted from its start, such a text leaves the window
        early while it arrives late, and the next second at the carrier gets one text too many.
        Moving it to its real departure keeps every window at the carrier under the rate.
        """
        with self._lock:
            now = self.clock()
            while self._sent and self._sent[0][0] <= now - self.window:
                self._in_window -= self._sent.popleft()[1]
            cost = start[1]
            if now <= start[0] or not cost:
                return
            if start[0] > now - self.window:  # still in the deque: stop counting it there
                self._in_window -= cost
                start[1] = 0.0
            # No start in the deque is later than now, so appending keeps it in time order.
            self._sent.append([now, cost])
            self._in_window += cost

    def enter(self, cost: float = 1.0) -> None:
        """Block until a text of ``cost`` may start, and record its start (threads)."""
        while (wait := self.try_take(cost)) > 0:
            time.sleep(wait)

    async def enter_async(self, cost: float = 1.0) -> tuple[float, list[float]]:
        """:meth:`enter` for an event loop; returns the start's wall-clock time and its entry
        (for :meth:`left`).

        Texts queue in order behind one waiter (asyncio's lock is FIFO and free when nobody
        waits), so each text leaving the window wakes one task, not every task held back.
        """
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            while True:
                wait, start = self._take(cost)
                if start is not None:
                    return self.started_at, start
                await asyncio.sleep(wait)


class DailyQuota:
    """A sender's messages-per-day limit (a carrier's daily cap, an ESP's quota), held by the
    one process that holds the code's lease (messaging/leases.py): counted from the database
    when it starts and when the UTC day turns, then by what it hands over itself, so the limit
    is exact without a query per slot. ``limit`` None: no limit."""

    def __init__(self, limit: int | None, count: Callable[[dt.datetime], int]) -> None:
        self.limit = limit
        self._count = count
        self._day: dt.date | None = None
        self.used = 0

    def left(self, now: dt.datetime) -> float:
        if self.limit is None:
            return math.inf
        day = now.astimezone(dt.UTC).date()
        if day != self._day:
            self._day, self.used = day, self._count(now)
        return max(0, self.limit - self.used)

    def spend(self, n: int) -> None:
        self.used += n


def max_in_window(times: list[float], costs: list[float] | None = None, window=1.0) -> float:
    """The largest total cost of texts whose times fall in any half-open window of ``window`` s.

    Used by the tests and the pacing benchmark to check the rule on what was actually sent.
    """
    pairs = sorted(zip(times, costs or [1.0] * len(times), strict=True))
    best = total = 0.0
    left = 0
    for t, c in pairs:
        total += c
        while pairs[left][0] <= t - window:
            total -= pairs[left][1]
            left += 1
        best = max(best, total)
    return best


# --- Sharing a pace by priority ----------------------------------------------------------------
# The planner shares a code's budget between its running skills and the sender shares each claim
# between the skills with queued texts, both in proportion to priority; the priorities page shows
# the same proportion. One formula for all three.


def priority_fraction(priority: int, priorities: Iterable[int]) -> Fraction:
    """One source's part of a shared pace: its priority over the sum of all (each counted as at
    least 1, ``priority`` among them)."""
    return Fraction(max(1, priority), sum(max(1, p) for p in priorities))


def priority_shares(budget: int, priorities: dict[Hashable, int]) -> dict[Hashable, int]:
    """Shares of ``budget`` proportional to priority, rounded up (each at least 1 while there is
    any budget, so no source starves; the sum may exceed ``budget`` by the rounding)."""
    total = sum(max(1, p) for p in priorities.values())
    if budget <= 0 or not total:
        return dict.fromkeys(priorities, 0)
    return {k: max(1, math.ceil(budget * max(1, p) / total)) for k, p in priorities.items()}
