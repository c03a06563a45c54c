"""How far a batch has got: items done of the total, the rate over a sliding window, the ETA.

Pure: the CLI's ``batch --wait`` feeds it ``(moment, items done)`` samples from its polls and
prints what :func:`progress_text` makes of them. No clock, no stream, no I/O here: the moments
are given, so the tests can play any timeline.

The rate is measured over the last ``window`` seconds rather than since the start: a batch slows
down when single predictions compete for the models and speeds up again when they stop, and an
ETA from the average since the start would lag behind both.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["RateMeter", "Snapshot", "format_duration", "progress_text", "should_print"]


@dataclass(frozen=True)
class Snapshot:
    """The progress at one moment.

    Attributes
    ----------
    done
        Items that have ended (completed, failed or cancelled).
    total
        Items in the batch; None while the gateway has not counted them yet.
    rate
        Items per second over the window; None until two samples span some time.
    eta
        Seconds left at that rate; None while the rate is unknown or zero, or the total is.
    """

    done: int
    total: int | None
    rate: float | None
    eta: float | None

    @property
    def percent(self) -> float | None:
        """``done`` as a percentage of ``total`` (None without a total; 100 for an empty batch)."""
        if self.total is None:
            return None
        if self.total <= 0:
            return 100.0
        return min(100.0, self.done * 100.0 / self.total)


class RateMeter:
    """Items per second over a sliding window of samples.

    Parameters
    ----------
    window
        Seconds of samples the rate is measured over. The newest sample older than the window is
        kept too, so that the rate always spans at least ``window`` seconds once there is that
        much history (polls further apart than the window still give a rate).
    """

    def __init__(self, window: float = 30.0) -> None:
        if window <= 0:
            raise ValueError(f"the window must be positive, got {window}")
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> None:
        """Record that ``done`` items had ended at moment ``at`` (seconds, any monotonic origin).

        A sample earlier than the last one is ignored (clocks do not go back); a count lower than
        the last one (a batch document read from a lagging replica) starts the window again.
        """
        if self._samples:
            last_at, last_done = self._samples[-1]
            if at < last_at:
                return
            if done < last_done:
                self._samples.clear()
        self._samples.append((at, done))
        # Keep one sample at or before the window's start: the rate spans the whole window.
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window:
            self._samples.popleft()

    @property
    def samples(self) -> int:
        """How many samples the window holds."""
        return len(self._samples)

    def rate(self) -> float | None:
        """Items per second over the window; None until two samples some time apart."""
        if len(self._samples) < 2:
            return None
        first_at, first_done = self._samples[0]
        last_at, last_done = self._samples[-1]
        if last_at <= first_at:
            return None
        return (last_done - first_done) / (last_at - first_at)

    def snapshot(self, done: int, total: int | None) -> Snapshot:
        """The progress now: ``done`` of ``total``, the window's rate and the ETA at that rate."""
        rate = self.rate()
        eta: float | None = None
        if total is not None and done >= total:
            eta = 0.0
        elif total is not None and rate is not None and rate > 0:
            eta = (total - done) / rate
        return Snapshot(done=done, total=total, rate=rate, eta=eta)


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``--`` for an unknown duration."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _bar(percent: float | None, width: int) -> str:
    if percent is None:
        return "[" + "?" * width + "]"
    filled = min(width, int(percent * width / 100))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-- items/s"
    return f"{rate:.1f} items/s" if rate >= 0.95 or rate == 0 else f"{rate:.2f} items/s"


def progress_text(snapshot: Snapshot, status: str = "", width: int = 24) -> str:
    """One line: ``RUNNING [######..........]  312/1,000  31%  4.2 items/s  ETA 2m44s``.

    Without a total (not counted yet) the bar is ``?`` and the count has no denominator.
    """
    percent = snapshot.percent
    count = f"{snapshot.done:,}/{snapshot.total:,}" if snapshot.total is not None else f"{snapshot.done:,} done"
    shown = "--%" if percent is None else f"{percent:.0f}%"
    parts = [status] if status else []
    parts += [_bar(percent, width), count, shown, _rate(snapshot.rate), f"ETA {format_duration(snapshot.eta)}"]
    return "  ".join(parts)


def should_print(*, tty: bool, now: float, last_printed: float | None, interval: float, final: bool) -> bool:
    """Whether to print a progress line now.

    On a terminal every poll redraws the line in place. Elsewhere (a log, a CI job) each line
    stays, so one every ``interval`` seconds, plus the first and the final one.
    """
    if tty or final or last_printed is None:
        return True
    return now - last_printed >= interval
