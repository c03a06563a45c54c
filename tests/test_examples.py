"""The example models in examples/: deterministic training, the SageMaker inference-toolkit handlers
(model_fn / input_fn / predict_fn / output_fn) answering the committed samples, and the vehicle-claim
samples reaching the decision their name promises.

Training runs once per session into a temporary directory (and once more for the determinism test).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

for _module in ("numpy", "sklearn", "xgboost", "PIL"):
    pytest.importorskip(_module, reason="the example models need the 'examples' extra")

from PIL import Image  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONTENT_TYPES = {".json": "application/json", ".png": "image/png"}
MODEL_SERVICES = (
    "fraud-score",
    "repair-cost",
    "damage-severity",
    "claim-decision",
    "triage-product",
    "triage-issue",
    "triage-vulnerable",
    "echo",
    "always-fails",
    "slow-noop",
)
TRIAGE_TASKS = {"triage-product": "product", "triage-issue": "issue", "triage-vulnerable": "vulnerability"}


def _load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


train = _load_script(EXAMPLES / "train.py", "examples_train")
make_samples = _load_script(EXAMPLES / "make_samples.py", "examples_make_samples")


class HostedModel:
    """One model as a SageMaker-compatible runtime hosts it: model_fn once, then the three handlers."""

    def __init__(self, name: str, model_dir: Path) -> None:
        self.name = name
        self.handlers = train.load_inference(name)
        self.model = self.handlers.model_fn(str(model_dir))

    def invoke(self, body: bytes, content_type: str, accept: str = "application/json") -> dict[str, Any]:
        data = self.handlers.input_fn(body, content_type)
        prediction = self.handlers.predict_fn(data, self.model)
        output = self.handlers.output_fn(prediction, accept)
        return json.loads(output)

    def invoke_json(self, document: Any) -> dict[str, Any]:
        return self.invoke(json.dumps(document).encode(), "application/json")


def _host_all(root: Path) -> dict[str, HostedModel]:
    return {name: HostedModel(name, root / name) for name in MODEL_SERVICES}


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    train.train_all(root=root, log=None)
    return root


@pytest.fixture(scope="session")
def models(trained_root: Path) -> dict[str, HostedModel]:
    return _host_all(trained_root)


def _samples(service: str) -> list[Path]:
    paths = sorted((EXAMPLES / service / "samples").iterdir())
    assert paths, f"no samples for {service}"
    return paths


def _invoke_sample(model: HostedModel, path: Path) -> dict[str, Any]:
    return model.invoke(path.read_bytes(), CONTENT_TYPES[path.suffix])


def _run_vehicle_claim(models: dict[str, HostedModel], document_bytes: bytes) -> dict[str, Any]:
    """The claim ensemble by hand: fraud, repair cost and severity from the upload, then the rules."""
    fraud = models["fraud-score"].invoke(document_bytes, "application/json")
    cost = models["repair-cost"].invoke(document_bytes, "application/json")
    severity = models["damage-severity"].invoke(document_bytes, "application/json")
    claim = json.loads(document_bytes)["claim"]
    decision = models["claim-decision"].invoke_json(
        make_samples.claim_decision_input(
            claim, fraud["fraud_probability"], cost["estimated_repair_cost"], severity["severity"]
        )
    )
    return {"fraud": fraud, "cost": cost, "severity": severity, "decision": decision}


def _is_probability(value: Any) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def _check_fraud_score(output: dict[str, Any]) -> None:
    features = list(train.load_inference("fraud-score").FEATURES)
    assert _is_probability(output["fraud_probability"])
    assert sorted(output["explanation"]) == sorted(features)
    assert all(isinstance(v, float) for v in output["explanation"].values())
    by_size = sorted(features, key=lambda f: -abs(output["explanation"][f]))
    assert len(output["top_factors"]) == 3
    assert {abs(output["explanation"][f]) for f in output["top_factors"]} == {
        abs(output["explanation"][f]) for f in by_size[:3]
    }


def _check_repair_cost(output: dict[str, Any]) -> None:
    assert isinstance(output["estimated_repair_cost"], float) and output["estimated_repair_cost"] > 0
    assert output["currency"] == "EUR"


def _check_damage_severity(output: dict[str, Any]) -> None:
    assert output["severity"] in ("minor", "moderate", "severe")
    assert sorted(output["probabilities"]) == ["minor", "moderate", "severe"]
    assert math.isclose(sum(output["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert output["probabilities"][output["severity"]] == max(output["probabilities"].values())


def _check_claim_decision(output: dict[str, Any]) -> None:
    assert output["decision"] in ("repair", "write-off", "refer")
    assert output["reasons"] and all(isinstance(r, str) and r for r in output["reasons"])


def _check_triage(service: str) -> Callable[[dict[str, Any]], None]:
    def check(output: dict[str, Any]) -> None:
        assert output["task"] == TRIAGE_TASKS[service]
        assert output["label"] in output["scores"]
        assert output["confidence"] == max(output["scores"].values())
        assert math.isclose(sum(output["scores"].values()), 1.0, abs_tol=1e-4)

    return check


def _check_echo(output: dict[str, Any]) -> None:
    assert "echo" in output


def _check_slow_noop(output: dict[str, Any]) -> None:
    assert output["ok"] is True


SHAPE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "fraud-score": _check_fraud_score,
    "repair-cost": _check_repair_cost,
    "damage-severity": _check_damage_severity,
    "claim-decision": _check_claim_decision,
    **{service: _check_triage(service) for service in TRIAGE_TASKS},
    "echo": _check_echo,
    "slow-noop": _check_slow_noop,
}
SAMPLE_CASES = [(service, path) for service in SHAPE_CHECKS for path in _samples(service)]


# --- training -----------------------------------------------------------------------------------


def _all_predictions(models: dict[str, HostedModel]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for service, path in SAMPLE_CASES:
        outputs[f"{service}/{path.name}"] = _invoke_sample(models[service], path)
    for path in _samples("complaint-triage"):
        for service in TRIAGE_TASKS:
            outputs[f"{service}/complaint-triage/{path.name}"] = _invoke_sample(models[service], path)
    for path in _samples("vehicle-claim"):
        outputs[f"vehicle-claim/{path.name}"] = _run_vehicle_claim(models, path.read_bytes())
    return outputs


def _version_outputs(root: Path) -> dict[str, Any]:
    """Every later version's answers to its model's samples (and complaint-triage's, for triage)."""
    outputs: dict[str, Any] = {}
    for directory, model in train.VERSION_OF.items():
        hosted = HostedModel(directory, root / directory)
        for folder in (model, "complaint-triage") if model.startswith("triage-") else (model,):
            for path in _samples(folder):
                outputs[f"{directory}/{folder}/{path.name}"] = _invoke_sample(hosted, path)
    return outputs


def test_training_twice_gives_identical_predictions(trained_root: Path, tmp_path: Path) -> None:
    # GIVEN the models (and their later versions) trained once for this session
    first = _all_predictions(_host_all(trained_root))
    first_versions = _version_outputs(trained_root)

    # WHEN every model is trained again, from scratch, into another directory
    trained = train.train_all(root=tmp_path, log=None)
    second = _all_predictions(_host_all(tmp_path))

    # THEN all the trainable models were trained and answer every sample exactly as before
    assert sorted(trained) == sorted(train.TRAINERS)
    assert second == first
    assert _version_outputs(tmp_path) == first_versions


def test_training_skips_models_whose_artefacts_are_present(trained_root: Path) -> None:
    # GIVEN a root where every model is already trained
    lines: list[str] = []

    # WHEN training runs again without force
    trained = train.train_all(root=trained_root, log=lines.append)

    # THEN nothing is retrained, and each model says so on one line
    assert trained == []
    assert len(lines) == len(train.TRAINERS)
    assert all("skipped" in line for line in lines)


def test_training_reports_a_held_out_metric_per_model(trained_root: Path) -> None:
    # GIVEN the trained models' metadata
    for name in train.TRAINERS:
        metadata = json.loads((trained_root / name / "model" / "metadata.json").read_text())

        # THEN each names its model and version, and carries held-out metrics good enough to demo
        assert metadata["model"] == train.model_name(name)
        assert metadata["version"] == train.VERSIONS[name]
        metrics = metadata["metrics"]
        if "roc_auc" in metrics:
            assert metrics["roc_auc"] > 0.7
        if "r2" in metrics:
            assert metrics["r2"] > 0.8
        if "accuracy" in metrics:
            assert metrics["accuracy"] > 0.75


def test_each_later_version_is_trained_from_its_own_settings_into_its_own_directory(trained_root: Path) -> None:
    # GIVEN the trained model directories that hold a later version of a model
    for directory, model in train.VERSION_OF.items():
        metadata = json.loads((trained_root / directory / "model" / "metadata.json").read_text())
        first = json.loads((trained_root / model / "model" / "metadata.json").read_text())

        # THEN each names the model it is a version of, its own version and other training settings
        assert (metadata["model"], metadata["version"]) == (model, train.VERSIONS[directory])
        assert metadata["version"] != first["version"]
        assert metadata["settings"] != first["settings"]


def test_a_later_version_answers_differently_from_the_version_it_follows(
    models: dict[str, HostedModel], trained_root: Path
) -> None:
    # GIVEN each later version and the model it is a version of
    for directory, model in train.VERSION_OF.items():
        later = HostedModel(directory, trained_root / directory)
        answers = [(_invoke_sample(models[model], p), _invoke_sample(later, p)) for p in _samples(model)]

        # THEN both answer in the model's documented shape, each naming its own version ...
        for old, new in answers:
            SHAPE_CHECKS[model](new)
            assert (new["model"], new["version"]) == (model, train.VERSIONS[directory])
            assert old["version"] != new["version"]
        # ... and the other training settings show in what they answer (scores, not always labels)
        key = "scores" if model.startswith("triage-") else "fraud_probability"
        assert any(old[key] != new[key] for old, new in answers)


def test_a_later_versions_code_is_its_models_code() -> None:
    # GIVEN each later version's handler code THEN it is its model's, unchanged
    for directory, model in train.VERSION_OF.items():
        code = (EXAMPLES / "models" / directory / "code" / "inference.py").read_text()
        assert code == (EXAMPLES / "models" / model / "code" / "inference.py").read_text()


def test_the_catalogs_versions_name_their_own_model_directory_and_endpoint() -> None:
    # GIVEN the example catalog's entries of a model with several versions
    entries = json.loads((EXAMPLES / "catalog.json").read_text())
    models = [e for e in entries if e["kind"] == "model" and e["model"].get("model_data")]
    for entry in models:
        directory = Path(entry["model"]["model_data"]).name

        # THEN each version's model directory holds that version of that model
        assert (train.model_name(directory), train.VERSIONS.get(directory, entry["version"])) == (
            entry["name"],
            entry["version"],
        )
    # AND no two versions share an endpoint
    endpoints = [e["model"]["endpoint_name"] for e in models]
    assert len(endpoints) == len(set(endpoints))


# --- every model answers its samples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "sample"), SAMPLE_CASES, ids=[f"{service}/{path.name}" for service, path in SAMPLE_CASES]
)
def test_model_answers_its_sample_with_the_documented_shape(
    models: dict[str, HostedModel], service: str, sample: Path
) -> None:
    # GIVEN a model loaded through its inference.py, and one of its committed samples
    model = models[service]

    # WHEN the sample goes through input_fn, predict_fn and output_fn
    output = _invoke_sample(model, sample)

    # THEN the JSON answer has the model's documented fields, plus its name and version
    SHAPE_CHECKS[service](output)
    assert output["model"] == service
    assert isinstance(output["version"], str) and output["version"]


def test_fraud_score_ranks_the_suspicious_claim_above_the_low_risk_one(
    models: dict[str, HostedModel],
) -> None:
    # GIVEN the two fraud-score samples
    low = _invoke_sample(models["fraud-score"], EXAMPLES / "fraud-score/samples/claim-low-risk.json")

    # WHEN both are scored
    suspicious = _invoke_sample(models["fraud-score"], EXAMPLES / "fraud-score/samples/claim-suspicious.json")

    # THEN the suspicious claim is far more likely to be fraud, and its red flags push it up
    assert low["fraud_probability"] < 0.2 < 0.8 < suspicious["fraud_probability"]
    assert all(suspicious["explanation"][f] > 0 for f in suspicious["top_factors"])


def test_repair_cost_grows_with_the_damage(models: dict[str, HostedModel]) -> None:
    # GIVEN a minor and a major damage claim
    minor = _invoke_sample(models["repair-cost"], EXAMPLES / "repair-cost/samples/claim-minor-damage.json")

    # WHEN both are costed
    major = _invoke_sample(models["repair-cost"], EXAMPLES / "repair-cost/samples/claim-major-damage.json")

    # THEN the major damage costs several times more
    assert major["estimated_repair_cost"] > 3 * minor["estimated_repair_cost"]


@pytest.mark.parametrize("severity", ["minor", "moderate", "severe"])
def test_damage_severity_classifies_each_sample_photo_in_any_accepted_encoding(
    models: dict[str, HostedModel], severity: str
) -> None:
    # GIVEN a sample photo as PNG, the same photo as JPEG, and as base64 inside JSON
    png = (EXAMPLES / f"damage-severity/samples/{severity}.png").read_bytes()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, format="JPEG", quality=90)
    model = models["damage-severity"]

    # WHEN each is classified
    outputs = [
        model.invoke(png, "image/png"),
        model.invoke(buffer.getvalue(), "image/jpeg"),
        model.invoke_json({"photo": base64.b64encode(png).decode()}),
    ]

    # THEN all three find the severity the photo was drawn with
    assert [output["severity"] for output in outputs] == [severity] * 3


@pytest.mark.parametrize(
    ("sample", "product", "issue", "vulnerability"),
    [
        ("card-fraud.json", "credit-card", "fraud-scam", "not-vulnerable"),
        ("bereaved-mortgage-fees.json", "mortgage", "fees-charges", "vulnerable"),
        ("home-claim-delay.json", "home-insurance", "service-delay", "not-vulnerable"),
    ],
)
def test_complaint_triage_samples_are_triaged_as_written(
    models: dict[str, HostedModel], sample: str, product: str, issue: str, vulnerability: str
) -> None:
    # GIVEN a complaint-triage sample
    path = EXAMPLES / "complaint-triage/samples" / sample

    # WHEN the three triage models classify it
    labels = [_invoke_sample(models[service], path)["label"] for service in TRIAGE_TASKS]

    # THEN product, issue and vulnerability are the ones the complaint describes
    assert labels == [product, issue, vulnerability]


def test_triage_models_accept_plain_text(models: dict[str, HostedModel]) -> None:
    # GIVEN a complaint as text/plain
    text = json.loads((EXAMPLES / "complaint-triage/samples/card-fraud.json").read_text())["text"]

    # WHEN it is classified
    output = models["triage-issue"].invoke(text.encode(), "text/plain; charset=utf-8")

    # THEN it is triaged like the JSON form
    assert output["label"] == "fraud-scam"


def test_triage_models_share_one_inference_file() -> None:
    # GIVEN the three triage models' handler code
    sources = {(EXAMPLES / "models" / name / "code/inference.py").read_text() for name in TRIAGE_TASKS}

    # THEN it is one file, kept identical (what differs is in the trained model directory)
    assert len(sources) == 1


# --- the vehicle-claim ensemble by hand -----------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "decision"),
    [
        ("routine-repair.json", "repair"),
        ("write-off.json", "write-off"),
        ("suspicious-refer.json", "refer"),
    ],
)
def test_vehicle_claim_samples_reach_the_intended_decision(
    models: dict[str, HostedModel], sample: str, decision: str
) -> None:
    # GIVEN a vehicle-claim upload: one JSON document with the claim and a base64 photo
    document = (EXAMPLES / "vehicle-claim/samples" / sample).read_bytes()

    # WHEN fraud-score, repair-cost and damage-severity run on it and claim-decision combines them
    result = _run_vehicle_claim(models, document)

    # THEN the decision is the one the sample is named for, with the photo's intended severity
    assert result["decision"]["decision"] == decision
    intended = make_samples.VEHICLE_CLAIMS[sample.removesuffix(".json")]["severity"]
    assert result["severity"]["severity"] == intended


# --- claim-decision rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraud", "cost", "severity", "value", "decision"),
    [
        (0.70, 1000.0, "minor", 20000.0, "refer"),  # the referral threshold is inclusive
        (0.69, 14200.0, "moderate", 20000.0, "write-off"),  # cost above 70 % of the value
        (0.10, 14000.0, "moderate", 20000.0, "repair"),  # exactly 70 % is still a repair
        (0.10, 12000.0, "severe", 20000.0, "write-off"),  # severe and above 50 %
        (0.10, 12000.0, "moderate", 20000.0, "repair"),  # 60 % but not severe
        (0.95, 30000.0, "severe", 20000.0, "refer"),  # suspected fraud first, whatever the cost
    ],
)
def test_claim_decision_applies_the_rules_in_order(
    models: dict[str, HostedModel], fraud: float, cost: float, severity: str, value: float, decision: str
) -> None:
    # GIVEN the three predictions and the vehicle value
    request = {
        "fraud_probability": fraud,
        "estimated_repair_cost": cost,
        "severity": severity,
        "vehicle_value": value,
    }

    # WHEN claim-decision decides
    output = models["claim-decision"].invoke_json(request)

    # THEN the first matching rule wins, and it says why
    assert output["decision"] == decision
    assert output["reasons"]


# --- clear errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", [s for s in MODEL_SERVICES if s != "always-fails"])
def test_wrong_content_type_is_a_clear_error(models: dict[str, HostedModel], service: str) -> None:
    # GIVEN a body with a content type the model does not accept
    handlers = models[service].handlers

    # WHEN input_fn sees it, THEN it refuses, naming the type it got
    with pytest.raises(ValueError, match=r"unsupported content type 'text/csv'"):
        handlers.input_fn(b"a,b\n1,2\n", "text/csv")


def test_unsupported_accept_type_is_a_clear_error(models: dict[str, HostedModel]) -> None:
    # GIVEN a prediction from a model that answers JSON
    model = models["echo"]
    prediction = model.handlers.predict_fn({"a": 1}, model.model)

    # WHEN the client asks for CSV, THEN output_fn refuses; */* is fine
    with pytest.raises(ValueError, match="unsupported accept type 'text/csv'"):
        model.handlers.output_fn(prediction, "text/csv")
    assert json.loads(model.handlers.output_fn(prediction, "*/*"))["echo"] == {"a": 1}


@pytest.mark.parametrize(
    ("service", "field"),
    [
        ("fraud-score", "days_since_policy_start"),
        ("repair-cost", "damage_area_pct"),
    ],
)
def test_a_missing_claim_field_is_named(models: dict[str, HostedModel], service: str, field: str) -> None:
    # GIVEN a claim without one of the fields the model needs
    claim = dict(make_samples.VEHICLE_CLAIMS["routine-repair"]["claim"])
    del claim[field]

    # WHEN input_fn parses it, THEN the error names the field
    with pytest.raises(ValueError, match=f"claim field '{field}' is missing"):
        models[service].handlers.input_fn(json.dumps({"claim": claim}).encode(), "application/json")


def test_an_out_of_range_claim_field_is_named(models: dict[str, HostedModel]) -> None:
    # GIVEN a claim whose damaged area is over 100 %
    claim = dict(make_samples.VEHICLE_CLAIMS["routine-repair"]["claim"], damage_area_pct=140)

    # WHEN repair-cost parses it, THEN the error names the field and the bounds
    with pytest.raises(ValueError, match="'damage_area_pct' must be between 0 and 100"):
        models["repair-cost"].handlers.input_fn(json.dumps(claim).encode(), "application/json")


def test_damage_severity_rejects_bytes_that_are_not_an_image(models: dict[str, HostedModel]) -> None:
    # GIVEN bytes labelled image/png that are not a picture
    handlers = models["damage-severity"].handlers

    # WHEN input_fn reads them, THEN it says so
    with pytest.raises(ValueError, match="not a readable PNG or JPEG image"):
        handlers.input_fn(b"definitely not a png", "image/png")


def test_claim_decision_names_a_missing_field(models: dict[str, HostedModel]) -> None:
    # GIVEN decision inputs without the vehicle value
    body = json.dumps({"fraud_probability": 0.1, "estimated_repair_cost": 100.0, "severity": "minor"}).encode()

    # WHEN input_fn parses them, THEN the error names the field
    with pytest.raises(ValueError, match="field 'vehicle_value' is missing"):
        models["claim-decision"].handlers.input_fn(body, "application/json")


@pytest.mark.parametrize("service", sorted(train.TRAINERS))
def test_an_untrained_model_says_how_to_train_it(service: str, tmp_path: Path) -> None:
    # GIVEN a model directory without trained artefacts
    handlers = train.load_inference(service)

    # WHEN the runtime loads it, THEN the error points at the training script
    with pytest.raises(FileNotFoundError, match=r"run python examples/train\.py"):
        handlers.model_fn(str(tmp_path / service))


def test_always_fails_fails_in_predict_fn(models: dict[str, HostedModel]) -> None:
    # GIVEN the always-fails model and its sample
    model = models["always-fails"]
    data = model.handlers.input_fn((EXAMPLES / "always-fails/samples/anything.json").read_bytes(), "application/json")

    # WHEN it predicts, THEN it raises the documented error
    with pytest.raises(ValueError, match="this model always fails: it exists to test error handling"):
        model.handlers.predict_fn(data, model.model)


def test_slow_noop_defaults_to_no_sleep_and_rejects_a_negative_sleep(models: dict[str, HostedModel]) -> None:
    # GIVEN the slow-noop model
    model = models["slow-noop"]

    # WHEN it gets an empty body, THEN it sleeps 0 ms
    assert model.invoke(b"", "application/json")["slept_ms"] == 0
    # WHEN it is asked to sleep a negative time, THEN it refuses
    with pytest.raises(ValueError, match="'sleep_ms' must be between 0"):
        model.handlers.input_fn(b'{"sleep_ms": -5}', "application/json")


def test_echo_returns_its_input(models: dict[str, HostedModel]) -> None:
    # GIVEN any JSON document
    document = {"message": "hello", "list": [1, 2.5, None], "nested": {"ok": True}}

    # WHEN echo answers it, THEN the document comes back unchanged, with echo's name and version
    assert models["echo"].invoke_json(document) == {"echo": document, "model": "echo", "version": "1"}


# --- committed samples ----------------------------------------------------------------------------


def _pixels(png: bytes) -> bytes:
    return Image.open(io.BytesIO(png)).convert("RGB").tobytes()


def _comparable(relative: str, content: bytes) -> Any:
    """PNG bytes depend on the zlib build: compare photos by their pixels."""
    if relative.endswith(".png"):
        return _pixels(content)
    document = json.loads(content)
    if isinstance(document, dict) and "photo" in document:
        document["photo"] = _pixels(base64.b64decode(document["photo"]))
    return document


def test_committed_samples_are_what_make_samples_generates() -> None:
    # GIVEN what make_samples.py would write
    expected = make_samples.sample_files()

    # THEN every file is committed with that content, and no stale sample lies next to them
    for relative, content in expected.items():
        path = EXAMPLES / relative
        assert path.is_file(), f"{relative} is missing: run python examples/make_samples.py"
        assert _comparable(relative, path.read_bytes()) == _comparable(relative, content), relative
    sample_dirs = {Path(relative).parent for relative in expected}
    on_disk = {str(p.relative_to(EXAMPLES)) for d in sample_dirs for p in (EXAMPLES / d).iterdir()}
    assert on_disk == set(expected)


def test_sample_photos_are_small_pngs() -> None:
    # GIVEN the committed damage photos
    for path in _samples("damage-severity"):
        # THEN each is a PNG under 20 KB
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert path.stat().st_size < 20_000
