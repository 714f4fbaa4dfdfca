"""Live power and flow from pulse timing, sans-io: interval counts in, pulses per second out.

The module tells us only how many pulses fell in each interval (normally 10 s), so a pulse's time
is known to within an interval. Multiplying the last interval's count by a constant reads 0 or
360 W for a 100 W load at 1000 imp/kWh; averaging over minutes hides a kettle. Instead we ask
which steady rates could have produced the counts seen.

If the pulses are periodic with period T, pulse number j falls at p0 + j*T and must lie in the
interval (a_j, b_j] that counted it. Eliminating p0 from every pair of pulses i < j gives the
exact set of feasible periods, an interval (lo, hi):

    (a_j - b_i) / (j - i)  <  T  <  (b_j - a_i) / (j - i)

Silence adds two censored pseudo-pulses: the pulse after the last one came after the last record
(it was not counted yet), and, while the window reaches back to where observation began, the pulse
before the first one came before that. Only the extreme pulses of an interval matter in a pair, so
a window of G pulse-bearing intervals costs O(G^2) per record, whatever the rate.

The window is the longest run of recent intervals that one steady rate fits. A record that no
period fits means the rate changed: the run then starts after the newest interval that does not
fit. So the window grows while the rate holds (the feasible range shrinks roughly like 1/pulses)
and collapses to the newest pulses on a step, which at high rates are many: steps show within one
or two records. Silence shrinks it too: once no period fits it, too few pulses are left to bound
a rate, and the reading is bounded by 1/(time since the last pulse) instead, falling to zero at
a timeout that is longer for slow meters.

Within the feasible range the reading is the posterior median of the period for a uniformly
random phase (the likelihood of T is the fraction of phases that reproduce every count) and a
scale-free prior (1/T). It beats the centre of the range when the range is wide, i.e. when few
pulses have been seen. When nothing bounds the period from below (the newest interval alone,
just after a step up) the reading is that interval's count over its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["RateEstimator"]

_INF: Final = math.inf
#: Points at which the posterior of the period is evaluated.
_SAMPLES: Final = 16


@dataclass(slots=True)
class _Group:
    """Pulses ``first .. last`` of the window, all in the interval (a, b].

    The censored pseudo-pulses are groups of one with a = -inf or b = +inf.
    """

    a: float
    b: float
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def _bounds(g: _Group, later: list[_Group]) -> tuple[float, float]:
    """Bounds on the period from the pulses of ``g`` among themselves and with later groups."""
    lo, hi = 0.0, (g.b - g.a) / (g.last - g.first) if g.last > g.first else _INF
    for j in later:
        lo = max(lo, (j.a - g.b) / (j.first - g.last))
        hi = min(hi, (j.b - g.a) / (j.last - g.first))
    return lo, hi


class RateEstimator:
    """Pulse rate of one register from its interval counts; see the module docstring.

    Feed every record to :meth:`update`, ask :meth:`rate` when a reading is wanted. Rates are in
    pulses per second; ``Meter.rate_factor()`` turns them into W, m³/h, L/min, ...

    Options (keyword-only):

    * ``interval``: the module's interval in seconds; the span of a first record given no span.
    * ``window``: at most this many pulse-bearing intervals are kept. More adds work but hardly
      precision: after a few dozen pulses the range is far narrower than a load is steady.
    * ``timeout``, ``timeout_periods``, ``max_timeout``: the reading is 0 once no pulse came for
      max(timeout, timeout_periods x the last estimated period), but at most max_timeout.
    * ``jitter``: how far a record's timestamp may be off (the host stamps lines as they arrive),
      in seconds; every interval is widened by it so timing noise is not taken for a change.
    """

    def __init__(
        self,
        *,
        interval: float = 10.0,
        window: int = 24,
        timeout: float = 300.0,
        timeout_periods: float = 3.0,
        max_timeout: float = 3600.0,
        jitter: float = 0.05,
    ) -> None:
        if not (interval > 0 and window >= 2 and 0 < timeout <= max_timeout and jitter >= 0):
            raise ValueError("bad RateEstimator options")
        self.interval = interval
        self.window = window
        self.timeout = timeout
        self.timeout_periods = timeout_periods
        self.max_timeout = max_timeout
        self.jitter = jitter
        self.reset()

    def reset(self) -> None:
        """Forget everything, as if just created."""
        self._groups: list[_Group] = []
        self._next = 0  # index of the next pulse
        self._end: float | None = None  # end of the last record
        self._span_start = 0.0  # and the start of its span
        #: While set, every pulse since this time is in the window (the pulse before came before).
        self._start: float | None = None
        self._whole = True  # the last fit took every interval kept
        #: No pulse is known since this time.
        self._quiet_since = 0.0
        #: The last period bounded on both sides: how long silence must last to mean zero.
        self._period: float | None = None
        self._value: float | None = None

    # -- input

    def update(self, t_end: float, pulses: int, *, span: float | None = None) -> None:
        """Take a record: ``pulses`` counted in (t_end - span, t_end].

        ``span`` defaults to the time since the previous record (the first record: ``interval``);
        after lost records pass the whole gap and the pulses in it. A span that starts more than
        half an interval after the previous record leaves a hole of unknown pulses, and a record
        before the previous one means the clock jumped: either way the window starts afresh (the
        reading carries on from what it was). A record at the same time as the previous one adds
        to its span.
        Raises ValueError for a negative count, a time that is not finite or a span not > 0.
        """
        if pulses < 0 or not math.isfinite(t_end) or (span is not None and not 0 < span < _INF):
            raise ValueError(f"bad record: t_end={t_end!r} pulses={pulses!r} span={span!r}")
        end = self._end
        start = t_end - (span if span is not None else self.interval)
        if end is not None and t_end == end:
            # Records that arrive together (read in one go) share a time: they share a span.
            start = self._span_start
        elif end is None or t_end < end or (span is not None and start > end + self.interval / 2):
            self._groups, self._start, self._quiet_since = [], start, start
        else:
            start = end  # contiguous; a small disagreement is timestamp noise
        self._end, self._span_start = t_end, start
        if pulses:
            j = self.jitter
            if self._groups and self._groups[-1].b == t_end + j:
                self._groups[-1].last += pulses
            else:
                self._groups.append(
                    _Group(start - j, t_end + j, self._next, self._next - 1 + pulses)
                )
            self._next += pulses
            self._quiet_since = t_end
            if len(self._groups) > self.window:
                # When the evicted pulses were part of the steady run, the pulse before the new
                # first one came before the end of their interval: a fact worth keeping.
                evicted = self._groups.pop(0)
                self._start = evicted.b - j if self._whole else None
        lo, hi, items = self._fit()
        if t_end - self._quiet_since >= self._timeout():
            # Zero, but the pulses are kept: for a slow meter, the next one gives the rate.
            self._value = 0.0
        elif hi < _INF and lo > 0:
            self._value = 1 / self._median(lo, hi, items)
            self._period = 1 / self._value
        elif hi < _INF:
            newest = self._groups[-1]
            length = newest.b - newest.a - 2 * self.jitter
            self._value = max(newest.count / length, 1 / hi)
            self._period = 1 / self._value
        elif self._value is not None and t_end > self._quiet_since:
            # Too few pulses fit one rate: the rate now is below 1 / (time since the last pulse),
            # and falls with it.
            self._value = min(self._value, 1 / (t_end - self._quiet_since))

    def _timeout(self) -> float:
        """Silence that means zero: a few periods of a slow meter are not yet a stop."""
        periods = self.timeout_periods * self._period if self._period is not None else 0.0
        return min(self.max_timeout, max(self.timeout, periods))

    def _fit(self) -> tuple[float, float, list[_Group]]:
        """The longest run of recent intervals one period fits: its (lo, hi) and constraints.

        Older intervals are kept, not dropped: records read together arrive one by one, and
        the first alone may not fit until the next one joins its span. Behind a change of rate
        they stay out of the run (the scan stops at the first interval that does not fit) until
        they are evicted.
        """
        assert self._end is not None
        j = self.jitter
        kept = [_Group(self._end - j, _INF, self._next, self._next)]  # the pulse not yet seen
        lo, hi = 0.0, _INF
        for g in reversed(self._groups):
            g_lo, g_hi = _bounds(g, kept)
            if max(lo, g_lo) > min(hi, g_hi):
                self._whole = False
                return lo, hi, kept
            lo, hi = max(lo, g_lo), min(hi, g_hi)
            kept.append(g)
        self._whole = True
        if self._start is not None:
            before = (self._groups[0].first if self._groups else self._next) - 1
            left = _Group(-_INF, self._start + j, before, before)
            l_lo, _ = _bounds(left, kept)
            if l_lo <= hi:  # else the rate changed before the first pulse
                lo = max(lo, l_lo)
                kept.append(left)
        return lo, hi, kept

    def _median(self, lo: float, hi: float, items: list[_Group]) -> float:
        """Posterior median of the period in (lo, hi) given the ``items`` of a fit.

        For a period T the first pulse p0 is confined to an interval of length room(T) (every
        group (a, b] asks a - first*T < p0 <= b - last*T); the fraction of phases that fit is
        room(T)/T, and with the prior 1/T the posterior density is room(T)/T^2.
        """
        if hi - lo < 1e-3 * (hi + lo):
            return (lo + hi) / 2  # within 0.1 % whatever the posterior: spare the work
        # Times relative to the last record and indices to the next pulse keep the products small.
        t0, n0 = items[0].a, items[0].first
        lows = [(g.a - t0, g.first - n0) for g in items if g.a > -_INF]
        highs = [(g.b - t0, g.last - n0) for g in items if g.b < _INF]
        step = (hi - lo) / _SAMPLES
        weights = []
        for i in range(_SAMPLES):
            t = lo + (i + 0.5) * step
            room = min(b - e * t for b, e in highs) - max(a - s * t for a, s in lows)
            weights.append(max(room, 0.0) / (t * t))
        half = sum(weights) / 2
        if not half > 0:
            return (lo + hi) / 2
        for i, w in enumerate(weights):
            if w >= half:
                return lo + (i + half / w) * step
            half -= w
        return hi

    # -- output

    def rate(self, now: float) -> float | None:
        """Pulses per second at ``now``: never negative, NaN or infinite.

        None until the data say something: no record yet, or fewer than two pulses and no
        timeout yet. After the first reading never None again. 0 once no pulse came for the
        timeout (counted up to ``now``, so a reading does not hang on when records stop), until
        pulses bound a rate again: the next pulse does if the last one before the silence still
        fits the same rate (a slow meter), else the one after.
        """
        if self._end is None:
            return None
        if now - self._quiet_since >= self._timeout():
            return 0.0
        return self._value
