"""Smoke test of bench/: every benchmark runs in quick mode on the session's local runtime and writes
its JSON with the expected keys and sane values. No timing thresholds: the figures themselves come
from ``python -m bench`` (make bench)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_results(runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.runner import run_benchmarks

    folder = tmp_path_factory.mktemp("bench-results")
    returned = run_benchmarks(None, quick=True, runtime=runtime, results_dir=folder)
    return folder, returned


def _load(bench_results: tuple[Path, dict[str, Any]], name: str) -> dict[str, Any]:
    folder, returned = bench_results
    document = json.loads((folder / f"{name}.json").read_text())
    assert document["benchmark"] == name
    assert document["quick"] is True
    assert set(returned[name]) <= set(document)
    return dict(document)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_every_benchmark_writes_its_json(bench_results: tuple[Path, dict[str, Any]]) -> None:
    from bench.runner import BENCHMARKS

    folder, _ = bench_results
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(BENCHMARKS)


def test_cold_start(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "cold_start")
    assert _positive(result["baselines"]["boto3_ms"])
    assert _positive(result["baselines"]["python_ms"])
    assert set(result["handlers"]) >= {"new_prediction", "process_input", "get_transform_call", "notifications"}
    for handler in result["handlers"].values():
        assert _positive(handler["import_ms"]) and handler["init_ms"] >= handler["import_ms"]
        assert _positive(handler["ratio_init_vs_boto3"])
        assert isinstance(handler["target_met"], bool)
    profile = next(iter(result["importtime"].values()))
    assert _positive(profile["total_ms"]) and profile["by_package_ms"]


def test_cost(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "cost")
    services = result["services"]
    names = {"fraud-score", "repair-cost", "vehicle-claim", "complaint-triage"}
    assert set(services) == names | {f"{name} inline" for name in names}
    for name, service in services.items():
        assert service["statuses"] == {"COMPLETED": 1.0} or service["statuses"] == {"COMPLETED": 1}, name
        # new-prediction, webhook-delivery at least (+ process-input for an upload, notifications when async)
        assert service["lambda_invocations_total"] >= (2 if service["inline"] else 3)
        assert service["aws_calls_total"] > 0 and service["dynamodb_calls"] > 0
        assert service["dynamodb_wru"] > 0 and service["dynamodb_rru"] > 0
        assert service["api_requests"] == 1
        assert _positive(service["dollars_per_million"])
    for name in ("vehicle-claim", "complaint-triage"):
        per_step = services[name]["per_step"]
        assert services[name]["state_transitions"] > 0
        assert per_step["steps"] >= 3 and _positive(per_step["transitions"]) and _positive(per_step["gateway_calls"])
    assert services["fraud-score"]["state_transitions"] == 0
    assert set(result["targets"]["met"]) == {n for n in services if n.startswith(("vehicle-claim", "complaint-triage"))}
    # An inline input has no S3 event and no client upload: fewer S3 PUT-class requests
    for name in names:
        inline, uploaded = services[f"{name} inline"], services[name]
        assert inline["s3_event_notifications"] == 0 < uploaded["s3_event_notifications"]
        assert inline["s3_put_class"] < uploaded["s3_put_class"]
        assert "process-input" not in inline["lambda_invocations"]


def test_overhead(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "overhead")
    assert set(result["configs"]) == {"single/0", "single/200", "chain/0", "chain/200"}
    for config in result["configs"].values():
        assert config["completed"] == config["runs"] > 0
        assert _positive(config["to_completed_ms"]["p50"]) and _positive(config["to_completed_ms"]["p95"])
        assert config["to_webhook_ms"]["p50"] >= config["to_completed_ms"]["p50"]
    assert result["configs"]["chain/200"]["model_ms"]["p50"] == pytest.approx(800, abs=50)
    assert set(result["per_step"]) == {"0", "200"}


def test_burst(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "burst")
    burst = result["burst"]
    assert burst["submitted"] == result["count"] > 0
    assert burst["accepted"] == burst["terminal"] == burst["submitted"]
    assert burst["lost"] == 0 and burst["webhooks_duplicate"] == 0 and burst["webhooks_missing"] == 0
    assert _positive(burst["throughput_per_s"]) and _positive(burst["latency_ms"]["p99"])
    for load in result["load"].values():
        assert load["terminal"] == load["submitted"] > 0 and load["lost"] == 0
    assert "avg_latency_increase_3x_vs_1x" in result


def test_mapping(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "mapping")
    assert result["mapping_keys"] == 20
    assert result["outputs_bytes"] >= 45_000
    assert _positive(result["evaluations_per_second"]["cached"])
    assert _positive(result["evaluations_per_second"]["parse_every_time"])
    assert _positive(result["ratio_cached_vs_parse"])
    assert len(result["per_key_us"]) == 20


def test_aws_latency(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "aws_latency")
    services = result["services"]
    for name in ("fraud-score", "repair-cost", "vehicle-claim", "complaint-triage"):
        service = services[name]
        assert service["status"] == "COMPLETED"
        assert _positive(service["modelled_ms"]) and service["sequential_hops"] >= 2, name
        assert service["modelled_to_webhook_ms"] > service["modelled_ms"]
    # The Parallel's steps, then the decision (whose success finishes the ensemble: the Complete
    # task's hop is off the critical path); real-time models finish without an SNS hop.
    assert services["vehicle-claim"]["hops"].get("Step Functions -> Lambda", 0) == 2
    assert services["fraud-score"]["hops"].get("SNS -> Lambda", 0) == 1
    assert services["repair-cost"]["hops"].get("SNS -> Lambda", 0) == 0
    assert result["target"]["service"] == "vehicle-claim" and isinstance(result["target"]["met"], bool)


def test_peer(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "peer")
    services = result["services"]
    assert set(services) == {"fraud-score", "repair-cost", "vehicle-claim", "complaint-triage"}
    for name, service in services.items():
        for key in ("ours_dollars_per_million", "ccc_dollars_per_million", "cost_ratio"):
            assert _positive(service[key]), (name, key)
        for key in ("ours_modelled_ms", "ccc_modelled_ms", "latency_ratio"):
            assert _positive(service[key]), (name, key)
        # Our pieces cover the trace exactly: they add up to what cost.account prices.
        check = service["partition_check"]
        # (calls the recorder could not place in an invocation are shared, in "other", and counted)
        assert check["unattributed_calls"] >= 0
        assert check["pieces_dollars_total"] == pytest.approx(check["account_dollars_total"], rel=1e-9)
        for entry in service["ccc_path"]:
            assert entry["ref_kind"] in (None, "published", "assumption"), entry
    # An async model's path is CCC's own: the same bill and the same path, by construction.
    assert services["fraud-score"]["cost_ratio"] == pytest.approx(1.0)
    assert services["fraud-score"]["latency_ratio"] == pytest.approx(1.0)
    for name in ("vehicle-claim", "complaint-triage"):
        service = services[name]
        steps = service["ccc_steps"]
        assert len(steps) >= 3
        for step in steps:
            if step["model"] == "skipped":
                continue
            # The step Lambda, process-input, the notification; an S3 event and SNS each time.
            assert step["lambda_invocations"] == 3 and step["sns_publishes"] == 1, (name, step)
            assert step["s3_reads_back"] >= 1 and step["sqs_requests"] >= 1, (name, step)
        assert service["ccc_counts"]["lambda_requests"] > service["ours_counts"]["lambda_invocations_total"]
        # The critical path holds a step input's S3 event, an SNS hop for every step on it (ours:
        # the async ones only) and the final Lambda's hop.
        hops, ours_hops = service["ccc_hops"], service["ours_hops"]
        assert hops.get("S3 ObjectCreated -> SQS", 0) >= 2, name
        assert hops.get("SNS -> Lambda", 0) > ours_hops.get("SNS -> Lambda", 0), name
        assert hops.get("Step Functions -> Lambda", 0) >= ours_hops.get("Step Functions -> Lambda", 0), name
        assert any(entry["label"] == "Step Functions -> Lambda (final)" for entry in service["ccc_path"]), name
    assert all(entry["kind"] and entry["text"] for entry in result["assumptions"].values())


def test_dag_layout(bench_results: tuple[Path, dict[str, Any]]) -> None:
    result = _load(bench_results, "dag_layout")
    # The shipped ensembles lay out exactly; the shape nested Parallels cannot express costs time.
    assert result["shipped"]["vehicle-claim"]["extra_seconds"] == 0
    assert result["shipped"]["a → c, b → c, b → d"]["extra_seconds"] > 0
    assert 0 <= result["random"]["exact_share_percent"] <= 100
    assert result["random"]["max_extra_percent"] >= result["random"]["mean_extra_percent"] >= 0
