"""The CLI's progress line for ensembles, and the demo's results table."""

from __future__ import annotations

from typing import Any

from ensemble_gateway.cli import progress_line
from ensemble_gateway.local.demo import result_line, result_widths


def step(name: str, status: str, service: str = "svc") -> dict[str, Any]:
    return {"name": name, "service": service, "status": status}


def line(status: str, steps: list[dict[str, Any]], known: list[str] | None) -> str:
    return progress_line({"prediction_id": "p1", "status": status, "steps": steps}, known)


def test_known_steps_are_counted_before_any_starts() -> None:
    # GIVEN an ensemble of four steps, none started / WHEN its progress is shown
    shown = line("RUNNING", [], ["damage", "cost", "fraud", "decision"])

    # THEN all four are counted, pending
    assert shown.endswith("steps 0/4 damage:pending cost:pending fraud:pending decision:pending")


def test_a_fan_out_step_ends_when_all_its_members_have() -> None:
    # GIVEN a fan-out step with two member models, one finished, and a skipped conditional step
    children = [step("classify", "COMPLETED"), step("classify", "RUNNING"), step("escalate", "SKIPPED")]

    # WHEN / THEN the fan-out is running (1 of its 2) and the skipped step counts as ended
    shown = line("RUNNING", children, ["vulnerability", "escalate", "classify"])
    assert "steps 1/3" in shown
    assert "vulnerability:pending escalate:skipped classify:running(1/2)" in shown


def test_steps_that_never_ran_are_said_so_once_the_ensemble_failed() -> None:
    # GIVEN a failed ensemble whose last step never started
    shown = line("FAILED", [step("first", "FAILED")], ["first", "second"])

    # WHEN / THEN the count stays out of two, and the step that never ran reads not-run
    assert shown.endswith("steps 1/2 first:failed second:not-run")


def test_without_the_step_names_no_total_is_guessed() -> None:
    # GIVEN an ensemble whose step names the CLI could not learn / WHEN / THEN no denominator
    shown = line("RUNNING", [step("a", "COMPLETED"), step("b", "RUNNING")], None)
    assert shown.endswith("steps 1 done a:completed b:running")
    # AND a model (no steps) shows its status alone
    assert progress_line({"prediction_id": "p1", "status": "RUNNING"}, None) == "p1 RUNNING"


def test_the_demo_table_shows_whole_sample_names() -> None:
    # GIVEN a sample whose name is longer than the table's usual column
    jobs = [
        {"service": "complaint-triage", "sample": "bereaved-mortgage-fees.json", "doc": {"steps": []}},
        {"service": "echo", "sample": "hello.json", "doc": None},
    ]

    # WHEN its rows are formatted
    widths = result_widths(jobs)
    rows = [result_line(job["service"], job["sample"], "COMPLETED", 2.3, "ok", widths) for job in jobs]

    # THEN the name is whole, and the columns after it stay aligned
    assert "bereaved-mortgage-fees.json COMPLETED" in rows[0]
    assert rows[0].index("COMPLETED") == rows[1].index("COMPLETED")
