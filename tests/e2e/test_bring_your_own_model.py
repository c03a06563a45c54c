"""Bring your own model: SageMaker model directories from anywhere on disk, through the public API.

Each test trains a small model on a dataset scikit-learn ships, writes it in the SageMaker layout
in a temporary directory (outside the repository), registers it with ``ensemble-gateway services
apply`` (a separate process, as a user runs it) against the session's running local runtime, and
predicts through the HTTP API. Expected outputs are computed from the same trained model with the
inference toolkit's own encoders, never written down.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sagemaker_inference import encoder
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge

SKLEARN_MODEL_FN_ONLY = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

SKLEARN_PREDICT_PROBA = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(input_data, model):
    return model.predict_proba(input_data)
"""

# The shape of SageMaker's scikit-learn inference-pipeline examples: worker.Response in output_fn.
SKLEARN_WORKER_RESPONSE = """
import json
import os

import joblib
from sagemaker_containers.beta.framework import encoders, worker


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == "application/json":
        instances = [{"label": int(label)} for label in prediction.tolist()]
        return worker.Response(json.dumps({"instances": instances}), mimetype=accept)
    if accept == "text/csv":
        return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
    raise RuntimeError("{} accept type is not supported by this script.".format(accept))
"""

XGBOOST_MODEL_FN_ONLY = """
import os

import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster
"""

TRANSFORM_FN = """
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, request_body, content_type, accept):
    rows = np.array(json.loads(request_body)["instances"], dtype=float)
    return json.dumps({"predictions": model.predict(rows).tolist()}), "application/json"
"""

BROKEN = """
import a_package_nobody_installed  # noqa: F401


def model_fn(model_dir):
    return None
"""

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


# -- fixtures: a user's machine -----------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_model() -> LogisticRegression:
    data = load_iris()
    return LogisticRegression(max_iter=500).fit(data.data, data.target)


@pytest.fixture(scope="module")
def state_file(runtime: Any, client_credentials: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local runtime's state file, as ``ensemble-gateway local`` writes it, for the CLI."""
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_text(
        json.dumps(
            {
                "api_url": runtime.api_url,
                "aws_url": runtime.aws_url,
                "stack_name": runtime.stack.stack_name,
                "outputs": runtime.stack.outputs,
                "api_key": client_credentials["api_key"],
                "root": str(runtime.root),
            }
        )
    )
    return path


def write_model(root: Path, script: str | None, artefacts: dict[str, Any]) -> Path:
    """A model directory in the SageMaker layout: artefacts at the root, code/inference.py."""
    root.mkdir(parents=True, exist_ok=True)
    if script is not None:
        (root / "code").mkdir()
        (root / "code" / "inference.py").write_text(textwrap.dedent(script))
    for name, artefact in artefacts.items():
        if name == "xgboost-model":
            artefact.save_model(str(root / name))
        else:
            joblib.dump(artefact, root / name)
    return root


def catalog_entry(name: str, model_data: str, framework: str, **model: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "model",
        "version": model.pop("version", "1.0.0"),
        "content_types": model.pop(
            "content_types", ["application/json", "text/csv", "application/x-npy", "text/libsvm"]
        ),
        "model": {"endpoint_name": name, "model_data": model_data, "framework": framework, **model},
    }


def apply(state_file: Path, catalog: Path, *entries: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``ensemble-gateway services apply CATALOG`` in its own process, against the running runtime."""
    catalog.write_text(json.dumps(list(entries)))
    return subprocess.run(
        [sys.executable, "-m", "ensemble_gateway.cli", "services", "apply", str(catalog)],
        env={**os.environ, "ENSEMBLE_GATEWAY_STATE": str(state_file)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def predict(api: Any, service: str, body: bytes, content_type: str, accept: str | None = None) -> tuple[dict, bytes]:
    document = api.predict(service, body, content_type, accept=accept, timeout=60)
    assert document["status"] == "COMPLETED", document
    return document, api.download(document)


def npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


# -- scikit-learn ---------------------------------------------------------------------------------


def test_a_model_fn_only_sklearn_script_answers_json_csv_and_npy_as_the_container_would(
    api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN a scikit-learn model directory outside the project, with only model_fn in inference.py
    write_model(tmp_path / "iris", SKLEARN_MODEL_FN_ONLY, {"model.joblib": iris_model})

    # WHEN it is registered with one services apply against the running local runtime
    result = apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-iris", "iris", "sklearn"))

    # THEN apply hosts it at once
    assert result.returncode == 0, result.stderr
    assert "registered model byom-iris" in result.stdout
    # AND JSON, CSV and NPY requests are answered with the container's defaults, encoded by Accept
    expected = iris_model.predict(np.array(IRIS_ROWS, dtype=np.float32))
    csv_rows = "\n".join(",".join(str(v) for v in row) for row in IRIS_ROWS)
    document, output = predict(api, "byom-iris", json.dumps(IRIS_ROWS).encode(), "application/json")
    assert json.loads(output) == expected.tolist()
    assert document["result"]["content_type"] == "application/json"
    document, output = predict(api, "byom-iris", csv_rows.encode(), "text/csv", accept="text/csv")
    assert output.decode() == encoder.encode(expected, "text/csv")
    # As the container's Flask response says it: text types carry their charset.
    assert document["result"]["content_type"] == "text/csv; charset=utf-8"
    document, output = predict(
        api, "byom-iris", npy(np.array(IRIS_ROWS)), "application/x-npy", accept="application/x-npy"
    )
    assert np.array_equal(np.load(io.BytesIO(output)), iris_model.predict(np.array(IRIS_ROWS)))
    assert document["result"]["content_type"] == "application/x-npy"


def test_a_predict_fn_script_and_a_worker_response_script_run_unchanged(
    api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN a predict_fn (predict_proba) script and one returning worker.Response from output_fn
    write_model(tmp_path / "proba", SKLEARN_PREDICT_PROBA, {"model.joblib": iris_model})
    write_model(tmp_path / "pipeline", SKLEARN_WORKER_RESPONSE, {"model.joblib": iris_model})

    # WHEN both are applied (one async, one real-time)
    result = apply(
        state_file,
        tmp_path / "catalog.json",
        catalog_entry("byom-proba", "proba", "sklearn"),
        catalog_entry("byom-pipeline", "pipeline", "sklearn", invocation="realtime"),
    )
    assert result.returncode == 0, result.stderr

    # THEN predict_proba's rows come back, and the worker.Response body and mimetype are the result
    _, output = predict(api, "byom-proba", json.dumps(IRIS_ROWS).encode(), "application/json")
    expected = iris_model.predict_proba(np.array(IRIS_ROWS, dtype=np.float32))
    assert np.allclose(json.loads(output), expected)
    labels = iris_model.predict(np.array(IRIS_ROWS, dtype=np.float32))
    _, output = predict(api, "byom-pipeline", json.dumps(IRIS_ROWS).encode(), "application/json")
    assert json.loads(output) == {"instances": [{"label": int(v)} for v in labels]}
    document, output = predict(api, "byom-pipeline", json.dumps(IRIS_ROWS).encode(), "application/json", "text/csv")
    assert document["result"]["content_type"].split(";")[0] == "text/csv"
    assert output.decode() == encoder.encode(labels, "text/csv")


def test_an_unsupported_content_type_fails_with_the_containers_message(
    api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN the default-handler scikit-learn model and a service that also takes text/plain
    write_model(tmp_path / "iris", SKLEARN_MODEL_FN_ONLY, {"model.joblib": iris_model})
    entry = catalog_entry("byom-plain", "iris", "sklearn", content_types=["text/plain"])
    assert apply(state_file, tmp_path / "catalog.json", entry).returncode == 0

    # WHEN a text/plain input reaches it
    document = api.predict("byom-plain", b"5.1 3.5 1.4 0.2", "text/plain", timeout=60)

    # THEN it fails with the toolkit's own message about the content type
    assert document["status"] == "FAILED", document
    assert "Content type text/plain is not supported by this framework" in document["error"]["message"]


# -- XGBoost --------------------------------------------------------------------------------------


def test_an_xgboost_booster_with_model_fn_only_answers_csv_and_libsvm(
    api: Any, state_file: Path, tmp_path: Path
) -> None:
    import xgboost as xgb

    # GIVEN an XGBoost Booster trained on the diabetes data, saved as xgboost-model
    data = load_diabetes()
    booster = xgb.train({"max_depth": 3, "eta": 0.3}, xgb.DMatrix(data.data, label=data.target), num_boost_round=20)
    write_model(tmp_path / "xgb", XGBOOST_MODEL_FN_ONLY, {"xgboost-model": booster})
    assert apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-xgb", "xgb", "xgboost")).returncode == 0
    rows = data.data[:3]

    # WHEN CSV and libsvm requests are predicted
    _, csv_output = predict(
        api, "byom-xgb", "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode(), "text/csv"
    )
    libsvm = "\n".join(" ".join(f"{i}:{float(v)!r}" for i, v in enumerate(row)) for row in rows)
    _, libsvm_output = predict(api, "byom-xgb", libsvm.encode(), "text/libsvm")

    # THEN both equal the Booster's own predictions
    expected = booster.predict(xgb.DMatrix(rows))
    assert np.allclose(json.loads(csv_output), expected, rtol=1e-5)
    assert np.allclose(json.loads(libsvm_output), expected, rtol=1e-5)


# -- transform_fn, archives, re-apply, broken code -------------------------------------------------


def test_a_transform_fn_script_packed_as_model_tar_gz(api: Any, state_file: Path, tmp_path: Path) -> None:
    # GIVEN a transform_fn script and a Ridge model packed as model.tar.gz
    data = load_diabetes()
    model = Ridge().fit(data.data, data.target)
    directory = write_model(tmp_path / "ridge", TRANSFORM_FN, {"model.joblib": model})
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in directory.iterdir():
            tar.add(path, arcname=path.name)

    # WHEN the archive is applied
    assert (
        apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-ridge", "model.tar.gz", "sklearn")).returncode
        == 0
    )

    # THEN transform_fn answers
    rows = data.data[:2].tolist()
    _, output = predict(api, "byom-ridge", json.dumps({"instances": rows}).encode(), "application/json")
    assert np.allclose(json.loads(output)["predictions"], model.predict(np.array(rows)))


def test_re_applying_replaces_the_model_and_a_broken_one_is_refused_by_apply(
    api: Any, state_file: Path, tmp_path: Path, iris_model: LogisticRegression
) -> None:
    # GIVEN a hosted model that answers class labels
    write_model(tmp_path / "v1", SKLEARN_MODEL_FN_ONLY, {"model.joblib": iris_model})
    assert apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-swap", "v1", "sklearn")).returncode == 0
    body = json.dumps(IRIS_ROWS).encode()
    _, before = predict(api, "byom-swap", body, "application/json")

    # WHEN the same version is applied again with a model answering probabilities (an update in
    # place: a new version would be added beside it and wait for approval)
    write_model(tmp_path / "v2", SKLEARN_PREDICT_PROBA, {"model.joblib": iris_model})
    replaced = apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-swap", "v2", "sklearn"))

    # THEN the new model answers the next prediction
    assert replaced.returncode == 0, replaced.stderr
    _, after = predict(api, "byom-swap", body, "application/json")
    assert len(json.loads(before)[0:1]) == 1 and not isinstance(json.loads(before)[0], list)
    assert len(json.loads(after)[0]) == 3  # one probability per class

    # WHEN a broken inference.py is applied for it
    write_model(tmp_path / "broken", BROKEN, {})
    refused = apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-swap", "broken", "sklearn"))

    # THEN apply fails naming the file and the exception, no traceback, and the previous model serves on
    assert refused.returncode == 2
    assert "code/inference.py" in refused.stderr and "a_package_nobody_installed" in refused.stderr
    assert "Traceback" not in refused.stderr
    services = {s["name"]: s for s in api.services()}
    assert services["byom-swap"]["version"] == "1.0.0"
    _, still = predict(api, "byom-swap", body, "application/json")
    assert len(json.loads(still)[0]) == 3


def test_a_missing_model_directory_is_refused_before_anything_is_registered(
    api: Any, state_file: Path, tmp_path: Path
) -> None:
    refused = apply(state_file, tmp_path / "catalog.json", catalog_entry("byom-missing", "no/such/dir", "sklearn"))
    assert refused.returncode == 2
    assert "no/such/dir does not exist" in refused.stderr
    assert "byom-missing" not in {s["name"] for s in api.services()}
