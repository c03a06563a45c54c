"""The progress of a batch (ensemble_gateway.batch_progress): rate over a sliding window, ETA, the line."""

from __future__ import annotations

import pytest

from ensemble_gateway.batch_progress import RateMeter, Snapshot, format_duration, progress_text, should_print


def test_the_eta_is_unknown_until_two_samples() -> None:
    # GIVEN a meter with one sample
    meter = RateMeter(window=30)
    meter.add(0.0, 10)

    # WHEN / THEN neither the rate nor the ETA is known yet
    first = meter.snapshot(10, 100)
    assert first.rate is None and first.eta is None
    assert progress_text(first).endswith("-- items/s  ETA --")

    # AND with a second sample 2 s later (10 more done) both are: 5/s, 80 left → 16 s
    meter.add(2.0, 20)
    second = meter.snapshot(20, 100)
    assert second.rate == pytest.approx(5.0)
    assert second.eta == pytest.approx(16.0)


def test_the_rate_is_measured_over_the_window_not_since_the_start() -> None:
    # GIVEN a batch that did 1 item/s for 100 s, then 10 items/s for 20 s
    meter = RateMeter(window=10)
    done = 0
    for second in range(1, 101):
        done += 1
        meter.add(float(second), done)
    for second in range(101, 121):
        done += 10
        meter.add(float(second), done)

    # WHEN / THEN the rate is the recent one (the average since the start would be 2.5/s)
    assert meter.rate() == pytest.approx(10.0)
    # AND the window holds the last 10 s of samples and one before it, no more
    assert meter.samples == 11


def test_polls_further_apart_than_the_window_still_give_a_rate() -> None:
    # GIVEN samples 60 s apart with a 30 s window
    meter = RateMeter(window=30)
    meter.add(0.0, 0)
    meter.add(60.0, 120)
    meter.add(120.0, 180)

    # WHEN / THEN the rate spans the last two samples (the older one is kept as the window's start)
    assert meter.rate() == pytest.approx(1.0)


def test_a_stalled_batch_has_no_eta_and_a_finished_one_has_none_left() -> None:
    # GIVEN no progress between two samples
    meter = RateMeter(window=30)
    meter.add(0.0, 5)
    meter.add(3.0, 5)

    # WHEN / THEN the rate is 0 and the ETA unknown (not infinite)
    stalled = meter.snapshot(5, 10)
    assert stalled.rate == 0 and stalled.eta is None
    # AND once every item is done there is nothing left to wait for
    meter.add(4.0, 10)
    assert meter.snapshot(10, 10).eta == 0.0


def test_a_count_going_back_restarts_the_window_and_a_clock_going_back_is_ignored() -> None:
    # GIVEN a meter at 50 done
    meter = RateMeter(window=30)
    meter.add(0.0, 40)
    meter.add(1.0, 50)

    # WHEN a sample from the past arrives, then a lower count (a lagging read)
    meter.add(0.5, 45)
    assert meter.samples == 2
    meter.add(2.0, 30)

    # THEN the window starts again from the lower count: no rate until a second sample
    assert meter.samples == 1 and meter.rate() is None


def test_without_a_total_there_is_no_percentage_or_eta() -> None:
    # GIVEN a batch whose lines the gateway has not counted yet
    meter = RateMeter()
    meter.add(0.0, 0)
    meter.add(1.0, 3)

    # WHEN / THEN the rate is known, the rest is not
    snapshot = meter.snapshot(3, None)
    assert snapshot.percent is None and snapshot.eta is None
    assert progress_text(snapshot, width=4) == "[????]  3 done  --%  3.0 items/s  ETA --"


def test_the_line_shows_count_percent_rate_and_eta() -> None:
    # GIVEN 312 of 1,000 done at 4.2 items/s
    snapshot = Snapshot(done=312, total=1000, rate=4.2, eta=688 / 4.2)

    # WHEN / THEN
    assert (
        progress_text(snapshot, "RUNNING", width=10) == "RUNNING  [###.......]  312/1,000  31%  4.2 items/s  ETA 2m44s"
    )
    # AND a slow rate keeps two decimals, a full bar its width
    assert "0.25 items/s" in progress_text(Snapshot(1, 4, 0.25, 12.0))
    assert progress_text(Snapshot(4, 4, 1.0, 0.0), width=4).startswith("[####]  4/4  100%")
    # AND an empty batch is complete
    assert Snapshot(0, 0, None, 0.0).percent == 100.0


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "--"), (0.4, "0s"), (42, "42s"), (59.6, "1m00s"), (185, "3m05s"), (7620, "2h07m"), (float("inf"), "--")],
)
def test_durations_read_as_seconds_minutes_or_hours(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_a_terminal_gets_every_line_a_log_one_every_interval() -> None:
    # GIVEN a line printed at t=10 with a 5 s interval
    # WHEN / THEN a terminal redraws at every poll; a log only after 5 s, except the first and the final line
    assert should_print(tty=True, now=11, last_printed=10, interval=5, final=False)
    assert not should_print(tty=False, now=11, last_printed=10, interval=5, final=False)
    assert should_print(tty=False, now=15, last_printed=10, interval=5, final=False)
    assert should_print(tty=False, now=11, last_printed=10, interval=5, final=True)
    assert should_print(tty=False, now=11, last_printed=None, interval=5, final=False)


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateMeter(window=0)
