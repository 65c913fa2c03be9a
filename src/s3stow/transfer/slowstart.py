"""Slow start: how quickly the request limit climbs at the start of an upload.

Over a long round trip the requests in flight set the pace (files/s ~= in flight /
round trip), so a run that starts at ``concurrency`` (16) and grows only by
``Growth``'s windows of throughput spends most of a few thousand small files below
the limit the link could take. ``SlowStart`` climbs first, round by round, the way
TCP's slow start does, with a delay signal deciding when to stop as HyStart++ (RFC
9406) does: it doubles the limit after every round in which each slot was taken, and
judges the round by its requests' latency. By Little's law (in flight = files/s x
latency) a doubled limit whose requests take ``r`` times as long carries ``2 / r`` times
the files per second: the same rule as ``Growth``'s, judged from one round instead of
two windows of throughput. A gain of at least ``1 + scaling`` doubles again; at least
``1 + worth`` keeps the limit and ends slow start; less goes back to the previous
round's limit and ends it. A round that did not pay is measured once more before
either (the first round at a new limit also opens its connections and starts its
threads), and the quicker of the two counts. A rise of less than
``START_RISE_FLOOR`` seconds is no rise (a local server's latency is a few
milliseconds, and noise). Slow start also ends at the ceiling and on the first
throttle; ``Growth`` judges any further step by throughput.

A round is ``max(limit, START_ROUND_MIN)`` completions of requests admitted at the
current limit (``epoch``): the requests of the previous limit are left out, so each
round's latency belongs to its own limit. By default (``by="quickest"``, uploads) the
quickest request, not the mean, is compared: a round's slowest requests open new
connections, wait for a file's bytes or for the interpreter's lock; its quickest
show what one request costs. ``by="median"`` (restores) compares the round's median
request instead: a small GET costs the client little, so on a local server the
quickest GET stays quick long after most requests wait for the cores (the limit
doubled to 128 and more while the median latency grew with it); the median rises
as soon as more requests only queue.

Pure state, no clock and no lock: the limiter times the requests and holds its lock
around every call, and tests drive it with synthetic latencies.
"""

from __future__ import annotations

from typing import Literal

START_ROUND_MIN = 8  # completions per round at least
START_RISE_FLOOR = 0.002  # seconds: a smaller rise of a round's latency is no rise


class SlowStart:
    """Doubles the request limit every round until latency rises (see the module)."""

    def __init__(
        self,
        ceiling: int,
        *,
        scaling: float,
        worth: float,
        by: Literal["quickest", "median"] = "quickest",
    ) -> None:
        self.ceiling = ceiling
        self.by = by  # which request of a round stands for its latency
        self.scaling = scaling  # Growth's rules (transfer/limits.py): one source
        self.worth = worth
        self.active = True
        self.epoch = 0  # the current round's number: requests admitted in it count
        self.doublings = 0  # steps taken
        self.stopped_by = ""  # "latency", "ceiling" or "throttling" once it has ended
        self._done = 0
        self._quickest = float("inf")
        self._latencies: list[float] = []  # the round's, when judged by the median
        self._full = False
        self._previous_limit = 0  # the last round judged (0: none yet)
        self._previous_latency = 0.0
        self._doubt = 0.0  # a first round at this limit that did not pay: its latency

    def admitted(self, active: int, limit: int) -> int:
        """A request admitted with ``active`` in flight (itself included): its epoch."""
        if active >= limit:
            self._full = True
        return self.epoch

    def completed(self, epoch: int, seconds: float, limit: int) -> int | None:
        """A request of ``epoch`` succeeded in ``seconds``: the new limit when this ends
        a round that changes it, else None."""
        if not self.active or epoch != self.epoch:
            return None
        self._done += 1
        if self.by == "median":
            self._latencies.append(seconds)
        elif seconds < self._quickest:
            self._quickest = seconds
        if self._done < max(limit, START_ROUND_MIN):
            return None
        full, latency = self._full, self._quickest  # the round's latency, as judged
        if self.by == "median":
            latencies = sorted(self._latencies)
            latency = latencies[len(latencies) // 2]
            self._latencies = []
        self.epoch += 1
        self._done, self._quickest, self._full = 0, float("inf"), False
        if not full:  # the work, not the slots, set this round's pace: nothing learnt
            return None
        second, self._doubt = self._doubt, 0.0
        if second:  # the better of the two rounds at this limit
            latency = min(latency, second)
        before, previous = self._previous_latency, self._previous_limit
        if previous and previous < limit and latency - before >= START_RISE_FLOOR:
            scale = limit / previous
            gain = scale * before / latency  # files/s, by Little's law
            if gain < 1 + self.scaling * (scale - 1):
                if not second:  # the first round at a new limit also opens connections
                    self._doubt = latency  # and starts threads: one more round
                    return None
                self.active, self.stopped_by = False, "latency"
                return None if gain >= 1 + self.worth else previous
        self._previous_limit, self._previous_latency = limit, latency
        if limit >= self.ceiling:
            self.active, self.stopped_by = False, "ceiling"
            return None
        self.doublings += 1
        return min(self.ceiling, limit * 2)

    def stop(self) -> None:
        """Throttled: the server pushes back, slow start is over (AIMD decides)."""
        if self.active:
            self.active, self.stopped_by = False, "throttling"
