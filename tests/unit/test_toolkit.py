"""The inference toolkit's request sequence and the framework containers' defaults, without a runtime.

Every default is checked against the reference: sagemaker-inference's own encoders and decoders
(JSON, CSV, NPY, NPZ), and xgboost's own libsvm parser.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import scipy.sparse
import xgboost
from sagemaker_inference import content_types, decoder, encoder
from sagemaker_inference.errors import GenericInferenceToolkitError, UnsupportedFormatError
from werkzeug.wrappers import Response

from ensemble_gateway.local.sagemaker import frameworks
from ensemble_gateway.local.sagemaker.compat.sagemaker_containers.beta.framework import (
    content_types as compat_content_types,
)
from ensemble_gateway.local.sagemaker.compat.sagemaker_containers.beta.framework import encoders, errors, worker
from ensemble_gateway.local.sagemaker.frameworks import (
    CUSTOM,
    HUGGINGFACE,
    SKLEARN,
    XGBOOST_ALGORITHM,
    XGBOOST_SCRIPT,
    framework_for,
)
from ensemble_gateway.local.sagemaker.toolkit import (
    Framework,
    ModelContext,
    ModelError,
    call_handler,
    invoke,
    model_error,
    negotiate_accept,
    normalise_result,
    request_data,
    resolve_handlers,
)

NPY = content_types.NPY
JSON = content_types.JSON
CSV = content_types.CSV

MATRIX = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]


def npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


class FakeModule(SimpleNamespace):
    """A model's module: whichever handlers the test gives it."""


class FakeEstimator:
    """A scikit-learn-like model recording what ``predict`` received; predicts each row's sum."""

    def __init__(self) -> None:
        self.received: Any = None

    def predict(self, data: Any) -> Any:
        self.received = data
        return np.asarray(data).sum(axis=-1)


class FakeBooster:
    """An xgboost Booster-like model recording ``predict``'s arguments."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result = np.array([0.25, 0.75]) if result is None else result
        self.error = error
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def predict(self, data: Any, **options: Any) -> Any:
        self.calls.append((data, options))
        if self.error is not None:
            raise self.error
        return self.result


class FakeResponse:
    """A Flask-like response: ``get_data()``, ``mimetype`` and ``status_code`` only."""

    def __init__(self, data: bytes, mimetype: str, status_code: int) -> None:
        self._data = data
        self.mimetype = mimetype
        self.status_code = status_code

    def get_data(self) -> bytes:
        return self._data


def context() -> ModelContext:
    return ModelContext(model_name="test", system_properties={"model_dir": "/opt/ml/model"})


def run(
    framework: Framework,
    model: Any,
    body: bytes,
    content_type: str | None = JSON,
    accept: str | None = JSON,
    module: Any = None,
    environment: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    handlers = resolve_handlers(module, framework)
    return invoke(handlers, framework, model, body, content_type, accept, context(), environment or {})


def run_error(framework: Framework, model: Any, body: bytes, **kwargs: Any) -> ModelError:
    with pytest.raises(ModelError) as caught:
        run(framework, model, body, **kwargs)
    return caught.value


def csr(dmatrix: Any) -> tuple[list[int], list[int], list[float]]:
    data = dmatrix.get_data()
    return data.indptr.tolist(), data.indices.tolist(), data.data.tolist()


# -- scikit-learn: decoding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (JSON, json.dumps(MATRIX).encode(), json.dumps(MATRIX)),
        (CSV, b"5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3", "5.1,3.5,1.4,0.2\n6.2,2.9,4.3,1.3"),
    ],
    ids=["json", "csv"],
)
def test_sklearn_decodes_text_types_as_sagemaker_inference_does_then_as_float32(
    content_type: str, body: bytes, text: str
) -> None:
    # GIVEN a scikit-learn model with only model_fn, and a JSON or CSV request
    model = FakeEstimator()

    # WHEN it is invoked
    run(SKLEARN, model, body, content_type=content_type)

    # THEN predict received the toolkit decoder's array of the str body, as float32
    expected = decoder.decode(text, content_type).astype(np.float32)
    assert model.received.dtype == np.float32
    np.testing.assert_array_equal(model.received, expected)


def test_sklearn_decodes_npy_as_sagemaker_inference_does_keeping_its_dtype() -> None:
    # GIVEN an NPY body of float64
    body = npy(MATRIX)
    model = FakeEstimator()

    # WHEN it is invoked
    run(SKLEARN, model, body, content_type=NPY)

    # THEN predict received the decoder's array unchanged (the float32 cast is for JSON and CSV only)
    reference = decoder.decode(body, NPY)
    assert model.received.dtype == reference.dtype == np.float64
    np.testing.assert_array_equal(model.received, reference)


def test_sklearn_decodes_npz_into_the_sparse_matrix_sagemaker_inference_makes() -> None:
    # GIVEN an NPZ body holding a sparse matrix
    buffer = io.BytesIO()
    scipy.sparse.save_npz(buffer, scipy.sparse.csr_matrix(np.array(MATRIX)))

    # WHEN the default input_fn decodes it
    decoded = frameworks.sklearn_input_fn(buffer.getvalue(), content_types.NPZ)

    # THEN it is the decoder's sparse matrix
    reference = decoder.decode(buffer.getvalue(), content_types.NPZ)
    assert scipy.sparse.issparse(decoded)
    np.testing.assert_array_equal(decoded.toarray(), reference.toarray())


def test_sklearn_without_content_type_reads_json() -> None:
    # GIVEN a request without a Content-Type
    model = FakeEstimator()

    # WHEN it is invoked
    body, _ = run(SKLEARN, model, json.dumps(MATRIX).encode(), content_type=None)

    # THEN the body was decoded as JSON, as the container's Request defaults it
    np.testing.assert_array_equal(model.received, np.array(MATRIX, dtype=np.float32))
    assert json.loads(body) == pytest.approx([10.2, 14.7], rel=1e-6)


def test_sklearn_unsupported_content_type_is_415_with_the_toolkit_message() -> None:
    # GIVEN a Content-Type the default input_fn cannot decode
    # WHEN it is invoked
    error = run_error(SKLEARN, FakeEstimator(), b"hello", content_type="text/plain")

    # THEN the container's 415 with the toolkit's message
    assert error.status == 415
    assert error.message == str(UnsupportedFormatError("text/plain"))
    assert "text/plain is not supported" in error.message


# -- scikit-learn: encoding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [(JSON, "application/json"), (CSV, "text/csv; charset=utf-8"), (NPY, "application/x-npy")],
    ids=["json", "csv", "npy"],
)
def test_sklearn_encodes_the_prediction_as_sagemaker_inference_does(accept: str, content_type: str) -> None:
    # GIVEN a model predicting two values
    prediction = np.array([9.2, 14.7])

    # WHEN the default output_fn encodes them for an Accept type
    body, answered = normalise_result(frameworks.containers_output_fn(prediction, accept), accept)

    # THEN the body is the toolkit encoder's, typed as the container's werkzeug response types it
    reference = encoder.encode(prediction, accept)
    assert body == (reference.encode() if isinstance(reference, str) else reference)
    assert answered == content_type
    if accept == NPY:
        np.testing.assert_array_equal(np.load(io.BytesIO(body)), prediction)


@pytest.mark.parametrize("accept", ["text/html", "application/json, text/csv"])
def test_sklearn_unsupported_accept_is_406(accept: str) -> None:
    # GIVEN an Accept the container's encoder has no entry for (it looks the whole value up)
    # WHEN it is invoked
    error = run_error(SKLEARN, FakeEstimator(), json.dumps(MATRIX).encode(), accept=accept)

    # THEN the container's 406 with the toolkit's message
    assert error.status == 406
    assert error.message == str(UnsupportedFormatError(accept))


def test_sklearn_has_no_default_model_fn() -> None:
    # GIVEN the scikit-learn framework's model_fn
    # WHEN it runs
    with pytest.raises(NotImplementedError, match="Please provide a model_fn implementation"):
        SKLEARN.model_fn("/opt/ml/model")


# -- Accept negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "environment", "framework", "expected"),
    [
        (None, {}, SKLEARN, JSON),
        ("*/*", {}, SKLEARN, JSON),
        ("", {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": CSV}, SKLEARN, CSV),
        ("*/*", {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": NPY}, CUSTOM, NPY),
        (NPY, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": CSV}, SKLEARN, NPY),
        (None, {}, XGBOOST_ALGORITHM, CSV),
        (None, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": CSV}, HUGGINGFACE, JSON),
    ],
    ids=["missing", "any", "env", "env-any", "given", "xgboost-algorithm", "huggingface-ignores-env"],
)
def test_accept_defaults_when_missing_or_any(
    accept: str | None, environment: dict[str, str], framework: Framework, expected: str
) -> None:
    # GIVEN a request's Accept, the endpoint's environment and a framework
    # WHEN the Accept is negotiated
    # THEN a missing or */* Accept is the environment's default, else the framework's
    assert negotiate_accept(accept, environment, framework) == expected


def test_a_missing_accept_reaches_output_fn_as_the_environment_default() -> None:
    # GIVEN an endpoint whose environment sets SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv
    environment = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": CSV}

    # WHEN a scikit-learn model is invoked without an Accept
    body, content_type = run(
        SKLEARN, FakeEstimator(), json.dumps(MATRIX).encode(), accept=None, environment=environment
    )

    # THEN the default output_fn wrote CSV
    assert content_type == "text/csv; charset=utf-8"
    assert body.decode() == encoder.encode(np.array(MATRIX, dtype=np.float32).sum(axis=-1), CSV)


# -- the bare toolkit (custom) -----------------------------------------------------------------------


def test_custom_decodes_with_the_toolkit_decoder_and_answers_the_first_supported_accept() -> None:
    # GIVEN a custom model with model_fn and predict_fn only, and an Accept list
    received: list[Any] = []

    def predict_fn(data: Any, model: Any) -> Any:
        received.append(data)
        return data * 2

    module = FakeModule(predict_fn=predict_fn)

    # WHEN it is invoked with a JSON body
    body, content_type = run(CUSTOM, None, b"[1, 2]", accept="text/html, text/csv", module=module)

    # THEN input_fn was decoder.decode (no float32 cast) and output_fn the first supported type
    np.testing.assert_array_equal(received[0], decoder.decode("[1, 2]", JSON))
    assert content_type == CSV
    assert body.decode() == encoder.encode(np.array([2, 4]), CSV)


def test_custom_without_predict_fn_fails_with_the_toolkit_message() -> None:
    # GIVEN a custom model without predict_fn
    # WHEN it is invoked
    error = run_error(CUSTOM, object(), b"[1]")

    # THEN the toolkit's NotImplementedError is a 500 with its message
    assert error.status == 500
    assert "Please provide a predict_fn implementation" in error.message


def test_custom_unsupported_content_type_is_500_as_sagemaker_inference_answers() -> None:
    # GIVEN a custom model with the default input_fn
    module = FakeModule(predict_fn=lambda data, model: data)

    # WHEN it is invoked with a type the decoder does not know
    error = run_error(CUSTOM, None, b"x", content_type="text/plain", module=module)

    # THEN the Transformer's 500 (not the 415 of the sagemaker-containers containers)
    assert error.status == 500
    assert error.message == str(UnsupportedFormatError("text/plain"))


# -- XGBoost with code (script mode) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["1.5,2,3\n4,,6", "1.5;2;3\n4;;6", "1.5\t2\t3\n4\t\t6"],
    ids=["comma", "semicolon", "tab"],
)
def test_xgboost_csv_sniffs_the_delimiter_and_reads_empty_cells_as_missing(text: str) -> None:
    # GIVEN CSV rows with some delimiter and an empty cell
    # WHEN the default input_fn decodes them
    dmatrix = frameworks.xgboost_input_fn(text, CSV)

    # THEN the DMatrix is the one of those numbers, the empty cell missing
    reference = xgboost.DMatrix(np.array([[1.5, 2, 3], [4, np.nan, 6]]))
    assert (dmatrix.num_row(), dmatrix.num_col()) == (2, 3)
    assert csr(dmatrix) == csr(reference)


@pytest.mark.parametrize(
    "text",
    ["1 1:0.5 3:2.0\n0 2:1.5 4:7", "1 0:0.5 2:2.0\n0 1:1.5 3:7", "1:0.5 3:2\n2:1.5 4:7"],
    ids=["one-based", "zero-based", "no-labels"],
)
@pytest.mark.parametrize("content_type", ["text/libsvm", "text/x-libsvm"])
@pytest.mark.filterwarnings("ignore:.*Text file input has been deprecated:UserWarning")
def test_xgboost_libsvm_matches_xgboosts_own_parser(text: str, content_type: str, tmp_path: Path) -> None:
    # GIVEN libsvm rows, 1-based or 0-based
    # (xgboost's parser wants a label first on each line; the toolkit ignores labels)
    labelled = "\n".join(line if ":" not in line.split()[0] else f"0 {line}" for line in text.split("\n"))
    reference_file = tmp_path / "data.libsvm"
    reference_file.write_text(labelled + "\n")

    # WHEN the default input_fn decodes them
    dmatrix = frameworks.xgboost_input_fn(text.encode(), content_type)

    # THEN the DMatrix is what xgboost's own parser reads, indexing auto-detected
    reference = xgboost.DMatrix(f"{reference_file}?format=libsvm&indexing_mode=-1")
    assert (dmatrix.num_row(), dmatrix.num_col()) == (reference.num_row(), reference.num_col())
    assert csr(dmatrix) == csr(reference)


def test_xgboost_predicts_without_validating_features() -> None:
    # GIVEN an XGBoost model with model_fn only
    booster = FakeBooster()

    # WHEN it is invoked with CSV
    body, content_type = run(XGBOOST_SCRIPT, booster, b"1,2\n3,4", content_type=CSV, accept=CSV)

    # THEN predict got a DMatrix and validate_features=False, and the output was encoded as CSV
    [(data, options)] = booster.calls
    assert isinstance(data, xgboost.DMatrix)
    assert options == {"validate_features": False}
    assert body.decode() == encoder.encode(booster.result, CSV)
    assert content_type == "text/csv; charset=utf-8"


def test_xgboost_json_input_is_415_as_its_script_mode_answers() -> None:
    # GIVEN an XGBoost model with model_fn only (its decoder knows CSV and libsvm)
    # WHEN it is invoked with JSON
    error = run_error(XGBOOST_SCRIPT, FakeBooster(), b"[[1, 2]]", content_type=JSON)

    # THEN 415 with the toolkit's message
    assert error.status == 415
    assert error.message == str(UnsupportedFormatError(JSON))


# -- XGBoost without code (the built-in algorithm) ---------------------------------------------------


def diabetes_booster() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    booster = xgboost.train({"nthread": 1, "max_depth": 2}, xgboost.DMatrix(features, label=target), num_boost_round=4)
    return booster, features


@pytest.mark.parametrize("form", ["pickle", "json", "ubj"])
def test_xgboost_algorithm_loads_xgboost_model_in_each_format(form: str, tmp_path: Path) -> None:
    # GIVEN an xgboost-model file, pickled or saved by Booster.save_model
    booster, features = diabetes_booster()
    target = tmp_path / frameworks.XGBOOST_MODEL_FILE
    if form == "pickle":
        target.write_bytes(pickle.dumps(booster))
    else:
        booster.save_model(tmp_path / f"model.{form}")
        target.write_bytes((tmp_path / f"model.{form}").read_bytes())

    # WHEN the default model_fn loads the directory
    loaded = XGBOOST_ALGORITHM.model_fn(str(tmp_path))

    # THEN it predicts as the trained booster does
    sample = xgboost.DMatrix(features[:3])
    np.testing.assert_allclose(loaded.predict(sample), booster.predict(sample), rtol=1e-6)


def test_xgboost_algorithm_reads_bytes_as_libsvm_without_a_content_type_and_answers_csv() -> None:
    # GIVEN the algorithm mode, a libsvm body without Content-Type and no Accept
    booster = FakeBooster()
    assert request_data(b"0:1 1:2", CSV, XGBOOST_ALGORITHM) == b"0:1 1:2"  # its server keeps bytes

    # WHEN it is invoked
    body, content_type = run(XGBOOST_ALGORITHM, booster, b"0 0:1 1:2\n0 0:3 1:4\n", content_type=None, accept=None)

    # THEN the body was libsvm (indices as given), and the answer CSV, one prediction a line
    [(data, options)] = booster.calls
    assert (data.num_row(), data.num_col()) == (2, 2)
    assert options == {"validate_features": False}
    assert content_type == "text/csv; charset=utf-8"
    assert body.decode() == encoder.encode([0.25, 0.75], CSV) == "0.25\n0.75\n"


def test_xgboost_algorithm_answers_json_as_scored_predictions() -> None:
    # GIVEN the algorithm mode and CSV
    # WHEN it is asked for JSON
    body, content_type = run(XGBOOST_ALGORITHM, FakeBooster(), b"1,2\n3,4\n", content_type=CSV, accept=JSON)

    # THEN the built-in algorithm's JSON document
    assert content_type == JSON
    assert json.loads(body) == {"predictions": [{"score": 0.25}, {"score": 0.75}]}


@pytest.mark.parametrize(
    ("content_type", "accept", "booster", "status"),
    [
        (JSON, CSV, FakeBooster(), 415),
        ("text/csv; label_size=2", CSV, FakeBooster(), 415),
        (CSV, NPY, FakeBooster(), 406),
        (CSV, CSV, FakeBooster(error=ValueError("feature_names mismatch")), 400),
    ],
    ids=["json-input", "label-size", "npy-accept", "predict-fails"],
)
def test_xgboost_algorithm_statuses_follow_its_server(
    content_type: str, accept: str, booster: FakeBooster, status: int
) -> None:
    # GIVEN the algorithm mode and a request it cannot serve
    # WHEN it is invoked
    error = run_error(XGBOOST_ALGORITHM, booster, b"1,2", content_type=content_type, accept=accept)

    # THEN the status its server answers, with a message saying why
    assert error.status == status
    if status == 400:
        assert error.message == "Unable to evaluate payload provided: feature_names mismatch"


def test_frameworks_without_code() -> None:
    # GIVEN each framework
    # WHEN asked for its defaults without an entry point
    # THEN only XGBoost, PyTorch and Hugging Face serve a model directory without code
    assert framework_for("xgboost", has_entry_point=False) is XGBOOST_ALGORITHM
    assert framework_for("xgboost", has_entry_point=True) is XGBOOST_SCRIPT
    assert framework_for("sklearn", has_entry_point=False) is None
    assert framework_for("custom", has_entry_point=False) is None
    assert framework_for("pytorch", has_entry_point=False) is not None
    with pytest.raises(KeyError):
        framework_for("tensorflow", has_entry_point=True)


# -- the sequence: body decoding, handlers, context --------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (JSON, "{}"),
        (CSV, "{}"),
        ("application/json; charset=utf-8", b"{}"),
        ("text/plain", b"{}"),
        (None, b"{}"),
    ],
)
def test_only_exactly_json_and_csv_bodies_are_decoded_to_str(content_type: str | None, expected: Any) -> None:
    # GIVEN a body and its content type
    # WHEN the toolkit prepares it for input_fn
    # THEN it is str for exactly application/json and text/csv, bytes otherwise
    assert request_data(b"{}", content_type, CUSTOM) == expected


def test_transform_fn_cannot_be_combined_with_the_other_handlers() -> None:
    # GIVEN a module defining transform_fn and predict_fn
    module = FakeModule(transform_fn=lambda *args: b"", predict_fn=lambda data, model: data)

    # WHEN its handlers are resolved
    # THEN the toolkit's ValueError
    with pytest.raises(ValueError, match="Cannot use transform_fn implementation in conjunction"):
        resolve_handlers(module, SKLEARN)


def test_missing_handlers_are_the_frameworks_and_defined_names_the_modules() -> None:
    # GIVEN a module with model_fn only
    def model_fn(model_dir: str) -> str:
        return "model"

    # WHEN its handlers are resolved against scikit-learn's
    handlers = resolve_handlers(FakeModule(model_fn=model_fn), SKLEARN)

    # THEN model_fn is its own and the others scikit-learn's
    assert handlers.model_fn is model_fn
    assert handlers.input_fn is frameworks.sklearn_input_fn
    assert handlers.predict_fn is frameworks.sklearn_predict_fn
    assert handlers.output_fn is frameworks.containers_output_fn
    assert handlers.transform_fn is None
    assert handlers.defined == {"model_fn"}


def test_a_handler_with_one_more_parameter_receives_the_context() -> None:
    # GIVEN handlers with and without a context parameter
    seen: dict[str, Any] = {}

    def input_fn(body: str, content_type: str, context: ModelContext) -> Any:
        seen["input"] = context
        return json.loads(body)

    def predict_fn(data: Any, model: Any) -> Any:
        return {"n": len(data)}

    def output_fn(prediction: Any, accept: str, context: ModelContext) -> tuple[str, str]:
        seen["output"] = context.model_name
        return json.dumps(prediction), "application/vnd.test+json"

    module = FakeModule(input_fn=input_fn, predict_fn=predict_fn, output_fn=output_fn)

    # WHEN the model is invoked
    body, content_type = run(CUSTOM, None, b"[1, 2, 3]", module=module)

    # THEN the context went to those that take it, and the tuple's content type was kept
    assert isinstance(seen["input"], ModelContext) and seen["output"] == "test"
    assert (json.loads(body), content_type) == ({"n": 3}, "application/vnd.test+json")


def test_a_handler_with_a_wrong_parameter_count_is_the_toolkits_type_error() -> None:
    # GIVEN an input_fn taking four parameters
    def input_fn(a: Any, b: Any, c: Any, d: Any) -> Any:
        return a

    # WHEN it is called with the toolkit's two arguments
    with pytest.raises(TypeError) as caught:
        call_handler(input_fn, context(), b"{}", JSON)

    # THEN the toolkit's message
    assert str(caught.value) == "input_fn takes 4 arguments but 2 were given."


def test_transform_fn_with_a_bare_body_is_typed_as_the_accept() -> None:
    # GIVEN a transform_fn returning a str
    module = FakeModule(transform_fn=lambda model, data, content_type, accept: data.decode().upper())

    # WHEN it is invoked with an Accept
    body, content_type = run(CUSTOM, None, b"quiet", content_type="text/plain", accept="text/plain", module=module)

    # THEN the body is sent as UTF-8, typed as the Accept
    assert (body, content_type) == (b"QUIET", "text/plain")


# -- results -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ((b"\x00\x01", "application/octet-stream"), (b"\x00\x01", "application/octet-stream")),
        ("héllo", ("héllo".encode(), "text/plain")),
        ({"a": np.float32(0.5), "b": np.array([1, 2])}, (b'{"a": 0.5, "b": [1, 2]}', "text/plain")),
        (None, (b"", "text/plain")),
        (Response(b"1,2\n", mimetype="text/csv"), (b"1,2\n", "text/csv; charset=utf-8")),
        (worker.Response('{"ok": true}', "ignored"), (b'{"ok": true}', "application/json")),
        (FakeResponse(b"<x/>", "application/xml", 200), (b"<x/>", "application/xml")),
    ],
    ids=["tuple", "str", "json-value", "none", "werkzeug", "sagemaker-containers", "response-like"],
)
def test_results_are_normalised_to_a_body_and_content_type(result: Any, expected: tuple[bytes, str]) -> None:
    # GIVEN an output_fn result
    # WHEN it is normalised for an Accept of text/plain
    # THEN the body and content type sent
    assert normalise_result(result, "text/plain") == expected


def test_a_response_with_an_error_status_is_a_model_error_with_that_status() -> None:
    # GIVEN an output_fn answering a Flask-like response with status 503
    module = FakeModule(
        predict_fn=lambda data, model: data,
        output_fn=lambda prediction, accept: FakeResponse(b"model warming up", "text/plain", 503),
    )

    # WHEN the model is invoked
    error = run_error(CUSTOM, None, b"[1]", module=module)

    # THEN a model error with the response's status and its body as the message
    assert (error.status, error.message) == (503, "model warming up")


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "framework", "status", "message"),
    [
        (ValueError("bad claim: missing vehicle"), SKLEARN, 500, "bad claim: missing vehicle"),
        (KeyError("vehicle"), CUSTOM, 500, "'vehicle'"),
        (RuntimeError(), CUSTOM, 500, "RuntimeError"),
        (GenericInferenceToolkitError(422, "amount must be positive"), CUSTOM, 422, "amount must be positive"),
        (GenericInferenceToolkitError(422, "amount must be positive"), HUGGINGFACE, 400, "amount must be positive"),
        (ValueError("no such label"), HUGGINGFACE, 400, "no such label"),
        (SystemExit("worker exit"), SKLEARN, 500, "worker exit"),
    ],
    ids=["plain", "key-error", "no-message", "toolkit", "huggingface-toolkit", "huggingface", "system-exit"],
)
def test_exceptions_become_the_status_and_message_the_container_answers(
    error: BaseException, framework: Framework, status: int, message: str
) -> None:
    # GIVEN an exception raised by a handler
    # WHEN it is mapped to a model error
    answered = model_error(error, framework)

    # THEN the container's status and the model's own message (a toolkit error's message, not its args)
    assert (answered.status, answered.message) == (status, message)
    assert answered.detail.startswith(f"{message}\n")


def test_a_predict_fn_exception_reaches_the_caller_with_its_own_message() -> None:
    # GIVEN a model whose predict_fn raises
    def predict_fn(data: Any, model: Any) -> Any:
        raise ValueError("bad claim: missing vehicle")

    # WHEN it is invoked
    error = run_error(SKLEARN, None, b"[[1]]", module=FakeModule(predict_fn=predict_fn))

    # THEN a 500 with that message, the traceback in the detail only
    assert (error.status, error.message) == (500, "bad claim: missing vehicle")
    assert "Traceback" in error.detail and "predict_fn" in error.detail
    assert (
        error.phrase("primary") == 'Received server error (500) from primary with message "bad claim: missing vehicle"'
    )


# -- the sagemaker_containers stand-in ---------------------------------------------------------------


def test_the_sagemaker_containers_stand_in_encodes_and_decodes_as_sagemaker_inference() -> None:
    # GIVEN the stand-in's encoders, errors and content types
    array = np.array(MATRIX)

    # WHEN they are used as scikit-learn container scripts use them
    # THEN they are sagemaker-inference's
    assert encoders.encode(array, compat_content_types.JSON) == encoder.encode(array, JSON)
    assert encoders.array_to_csv(array) == encoder.encode(array, CSV)
    np.testing.assert_array_equal(encoders.decode(npy(array), compat_content_types.NPY), array)
    np.testing.assert_array_equal(encoders.csv_to_numpy("1,2\n3,4", dtype=np.float32), [[1, 2], [3, 4]])
    assert errors.UnsupportedFormatError is UnsupportedFormatError
    with pytest.raises(errors.UnsupportedFormatError):
        encoders.encode(array, "text/html")
    response = worker.Response(encoders.encode(array, CSV), CSV, mimetype=CSV)
    assert (response.status_code, response.content_type) == (200, "text/csv; charset=utf-8")
