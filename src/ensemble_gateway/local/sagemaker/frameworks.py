"""Each SageMaker framework container's defaults for the handlers a model's code leaves out.

Written after the containers' own serving code (read, not copied), on the encoders, decoders,
content types and errors of the PyPI package ``sagemaker-inference``:

- ``sklearn`` (sagemaker-scikit-learn-container, built on sagemaker-containers): no default
  ``model_fn`` (NotImplementedError); ``input_fn`` decodes JSON, CSV, NPY and NPZ into numpy
  (``.astype(np.float32)`` for JSON and CSV); ``predict_fn`` is ``model.predict``; ``output_fn``
  encodes the prediction as the Accept type (JSON, CSV or NPY) and answers it as a werkzeug
  response would type it (``text/csv; charset=utf-8``). An unsupported Content-Type answers 415,
  an unsupported Accept 406, with the toolkit's message.
- ``xgboost`` with code (sagemaker-xgboost-container's script mode, also on sagemaker-containers):
  as ``sklearn``, except that ``input_fn`` turns CSV (delimiter sniffed from the first line, empty
  cells NaN) and ``text/libsvm`` / ``text/x-libsvm`` (1-based indices detected, as the current
  container does) into an ``xgboost.DMatrix``, and ``predict_fn`` is
  ``model.predict(dmatrix, validate_features=False)``.
- ``xgboost`` without code (the built-in algorithm's server): ``model_fn`` loads ``xgboost-model``
  (a pickled Booster, else ``Booster.load_model``: JSON, UBJSON or the binary format); the body
  stays bytes; a missing Content-Type is libsvm; CSV and libsvm (indices as given) become a
  DMatrix, anything else answers 415; ``predict`` failures answer 400; Accept defaults to
  ``text/csv``, JSON answers ``{"predictions": [{"score": ...}, ...]}``, others 406.
- ``pytorch`` (sagemaker-pytorch-inference-toolkit): TorchScript ``model.pt`` (or the one
  ``*.pt``/``*.pth``) through ``torch.jit.load``; the body decoded into a float tensor; the model
  called under ``torch.no_grad()`` in eval mode; the output encoded as the first supported type
  of the Accept list. Needs ``torch``.
- ``huggingface`` (sagemaker-huggingface-inference-toolkit): ``transformers.pipeline(task=HF_TASK,
  model=model_dir)`` (the task inferred from ``config.json``'s architecture when HF_TASK is not
  set); JSON ``{"inputs": ..., "parameters": {...}}`` in, JSON out; every failure answers 400.
  Needs ``transformers``.
- ``custom``: the bare ``sagemaker_inference.default_inference_handler.DefaultInferenceHandler``
  (no ``model_fn`` or ``predict_fn``; ``decoder.decode``; the first supported type of the Accept list).

``torch``, ``transformers`` and ``xgboost`` are imported only when a model of theirs is served.

Local differences: ``application/x-recordio-protobuf`` is not decoded (415) nor produced (406);
the algorithm mode loads ``xgboost-model`` only (the container loads the directory's first file,
or all of them as an ensemble), answers ``application/jsonlines`` 406, has no selectable inference
output (``SAGEMAKER_INFERENCE_OUTPUT``) and does not check feature counts before predicting;
Hugging Face decodes JSON only (not CSV, images or audio) and never downloads a model (``HF_MODEL_ID``).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sagemaker_inference import content_types, decoder, encoder, utils
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler
from sagemaker_inference.errors import GenericInferenceToolkitError, UnsupportedFormatError
from werkzeug.utils import get_content_type

from .toolkit import Framework

__all__ = [
    "CUSTOM",
    "HUGGINGFACE",
    "LIBSVM_TYPES",
    "PYTORCH",
    "SKLEARN",
    "XGBOOST_ALGORITHM",
    "XGBOOST_MODEL_FILE",
    "XGBOOST_SCRIPT",
    "csv_to_dmatrix",
    "framework_for",
    "libsvm_to_dmatrix",
]

LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm")
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
XGBOOST_MODEL_FILE = "xgboost-model"
PYTORCH_MODEL_FILE = "model.pt"
HUGGINGFACE_CONFIG_FILE = "config.json"
HF_TASK_VARIABLE = "HF_TASK"


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    """``text/csv; label_size=1`` -> ``("text/csv", {"label_size": "1"})``."""
    kind, _, rest = value.partition(";")
    parameters = {}
    for item in rest.split(";"):
        key, separator, parameter = item.partition("=")
        if separator:
            parameters[key.strip().lower()] = parameter.strip().strip('"')
    return kind.strip(), parameters


def _as_text(data: bytes | str) -> str:
    return data.decode("utf-8") if isinstance(data, bytes | bytearray) else data


def _import_xgboost() -> Any:
    import xgboost  # only when an XGBoost model is served

    return xgboost


def _import_torch() -> Any:
    import torch  # only when a PyTorch model is served (never installed by this project)

    return torch


def _unsupported(error: UnsupportedFormatError, status: int) -> GenericInferenceToolkitError:
    """The 415 or 406 sagemaker-containers' transformer answers for its defaults' unsupported formats."""
    return GenericInferenceToolkitError(status, str(error))


# -- the sagemaker-containers containers: scikit-learn, and XGBoost with code --------------------


def no_model_fn(model_dir: str) -> Any:
    """The scikit-learn and XGBoost containers' ``model_fn``: there is none."""
    raise NotImplementedError(
        "Please provide a model_fn implementation. "
        "See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk"
    )


def sklearn_input_fn(input_data: bytes | str, content_type: str) -> Any:
    """JSON, CSV, NPY or NPZ into numpy (float32 for the text types)."""
    try:
        array = decoder.decode(input_data, content_type)
    except UnsupportedFormatError as error:
        raise _unsupported(error, 415) from error
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def sklearn_predict_fn(input_data: Any, model: Any) -> Any:
    """``model.predict`` on the decoded input."""
    return model.predict(input_data)


def containers_output_fn(prediction: Any, accept: str) -> tuple[Any, str]:
    """The prediction encoded as ``accept`` (JSON, CSV or NPY), typed as a werkzeug response types it."""
    try:
        body = encoder.encode(prediction, accept)
    except UnsupportedFormatError as error:
        raise _unsupported(error, 406) from error
    # The container answers worker.Response(body, mimetype=accept): werkzeug adds the charset of text/*.
    return body, get_content_type(accept, "utf-8")


def csv_to_dmatrix(data: bytes | str, dtype: Any = None) -> Any:
    """CSV rows into a DMatrix: the delimiter sniffed from the first line, empty cells missing (NaN)."""
    xgboost = _import_xgboost()
    text = _as_text(data)
    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed  # a one-column row sniffs as a digit
    rows = [["nan" if cell == "" else cell for cell in line.split(delimiter)] for line in text.split("\n")]
    return xgboost.DMatrix(np.array(rows).astype(dtype))


def libsvm_to_dmatrix(data: bytes | str, *, detect_one_based: bool) -> Any:
    """libsvm rows (``label index:value ...``) into a sparse DMatrix; the labels are ignored.

    With ``detect_one_based``, indices that never go below 1 are taken as 1-based, as the script
    mode container and xgboost's own parser (``indexing_mode=-1``) decide.
    """
    import scipy.sparse

    xgboost = _import_xgboost()
    lines = _as_text(data).strip().split("\n")
    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    for row, line in enumerate(lines):
        for token in line.split():
            index, separator, value = token.partition(":")
            if not separator or index == "qid":  # the label, or a ranking group: not features
                continue
            rows.append(row)
            columns.append(int(index))
            values.append(float(value))
    if detect_one_based and columns and min(columns) >= 1:
        columns = [column - 1 for column in columns]
    shape = (len(lines), max(columns) + 1 if columns else 0)
    return xgboost.DMatrix(scipy.sparse.csr_matrix((values, (rows, columns)), shape=shape))


def xgboost_input_fn(input_data: bytes | str, content_type: str) -> Any:
    """CSV or libsvm into a DMatrix, as the XGBoost container's script mode decodes them."""
    media_type, _ = _media_type(content_type or "")
    if media_type == content_types.CSV:
        return csv_to_dmatrix(input_data)
    if media_type in LIBSVM_TYPES:
        return libsvm_to_dmatrix(input_data, detect_one_based=True)
    if media_type == RECORDIO_PROTOBUF:
        raise GenericInferenceToolkitError(415, f"{RECORDIO_PROTOBUF} is not decoded by the local SageMaker runtime.")
    raise _unsupported(UnsupportedFormatError(media_type), 415)


def xgboost_predict_fn(input_data: Any, model: Any) -> Any:
    """``model.predict(dmatrix, validate_features=False)``."""
    return model.predict(input_data, validate_features=False)


# -- XGBoost without code: the built-in algorithm's server ---------------------------------------


def xgboost_algorithm_model_fn(model_dir: str) -> Any:
    """``xgboost-model``: a pickled Booster, else a model ``Booster.load_model`` reads."""
    xgboost = _import_xgboost()
    path = Path(model_dir) / XGBOOST_MODEL_FILE
    data = path.read_bytes()
    try:
        model = pickle.loads(data)
    except Exception as pickle_error:
        model = xgboost.Booster()
        try:
            model.load_model(bytearray(data))  # JSON, UBJSON or binary, told apart by content
        except Exception as xgboost_error:
            # xgboost's own message goes on with its native stack trace: its first line says it all.
            reason = next(iter(str(xgboost_error).splitlines()), type(xgboost_error).__name__)
            raise RuntimeError(
                f"{path} cannot be loaded: not a pickle ({pickle_error}) nor an XGBoost model ({reason})"
            ) from xgboost_error
    if isinstance(model, xgboost.Booster):
        model.set_param("nthread", 1)  # as the container does: it runs one worker per CPU
    return model


def _algorithm_dmatrix(payload: bytes | str, content_type: str | None) -> Any:
    media_type, parameters = _media_type((content_type or LIBSVM_TYPES[0]).lower())
    text = _as_text(payload).strip()
    if media_type == content_types.CSV:
        if parameters.get("label_size", "1") != "1":
            raise ValueError(f"{content_type} is not an accepted csv ContentType: label_size must be 1")
        return csv_to_dmatrix(text, dtype=float)
    if media_type in LIBSVM_TYPES:
        return libsvm_to_dmatrix(text, detect_one_based=False)
    if media_type == RECORDIO_PROTOBUF:
        raise ValueError(f"{RECORDIO_PROTOBUF} is not decoded by the local SageMaker runtime.")
    raise ValueError(f"Content-type {content_type} is not supported: use text/csv or text/libsvm.")


def xgboost_algorithm_input_fn(input_data: bytes | str, content_type: str | None) -> Any:
    """CSV (``label_size=1`` at most) or libsvm into a DMatrix; any failure answers 415."""
    try:
        return _algorithm_dmatrix(input_data, content_type)
    except Exception as error:
        message = f"Loading the payload failed: {type(error).__name__}: {error}"
        raise GenericInferenceToolkitError(415, message) from error


def xgboost_algorithm_predict_fn(input_data: Any, model: Any) -> Any:
    """``model.predict``; a failure answers 400."""
    try:
        return model.predict(input_data, validate_features=False)
    except Exception as error:
        raise GenericInferenceToolkitError(400, f"Unable to evaluate payload provided: {error}") from error


_ALGORITHM_ACCEPTS = (content_types.JSON, content_types.CSV)


def xgboost_algorithm_output_fn(prediction: Any, accept: str) -> tuple[str, str]:
    """JSON ``{"predictions": [{"score": ...}]}`` or CSV, one prediction a line; other types answer 406."""
    media_type = _media_type(accept)[0].lower()
    if media_type not in _ALGORITHM_ACCEPTS:
        supported = ", ".join(_ALGORITHM_ACCEPTS)
        message = f"Accept type {accept} is not supported. Please use one of: {supported}."
        raise GenericInferenceToolkitError(406, message)
    values = prediction.tolist()
    if media_type == content_types.JSON:
        body = json.dumps({"predictions": [{"score": value} for value in values]})
    else:
        body = encoder.encode(values, content_types.CSV)
    return body, get_content_type(media_type, "utf-8")


# -- PyTorch -------------------------------------------------------------------------------------


def _torch_device(torch: Any) -> Any:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _pytorch_model_path(model_dir: Path) -> Path:
    path = model_dir / PYTORCH_MODEL_FILE
    if path.exists():
        return path
    candidates = sorted(item.name for item in model_dir.iterdir() if item.is_file() and item.suffix in (".pt", ".pth"))
    if len(candidates) != 1:
        raise ValueError(f"Exactly one .pth or .pt file is required for PyTorch models: {candidates}")
    return model_dir / candidates[0]


def pytorch_model_fn(model_dir: str) -> Any:
    """The TorchScript model in ``model.pt`` (or the directory's one ``.pt``/``.pth``)."""
    torch = _import_torch()
    device = _torch_device(torch)
    path = _pytorch_model_path(Path(model_dir))
    try:
        model = torch.jit.load(str(path), map_location=device)
    except RuntimeError as error:
        raise RuntimeError(f"Failed to load {path}. Please ensure model is saved using torchscript.") from error
    return model.to(device)


def pytorch_input_fn(input_data: bytes | str, content_type: str) -> Any:
    """JSON, CSV, NPY or NPZ into a tensor (float for the text types)."""
    torch = _import_torch()
    array = decoder.decode(input_data, content_type)
    tensor = torch.FloatTensor(array) if content_type in content_types.UTF8_TYPES else torch.from_numpy(array)
    return tensor.to(_torch_device(torch))


def pytorch_predict_fn(data: Any, model: Any) -> Any:
    """``model(data)`` in eval mode, without gradients."""
    torch = _import_torch()
    device = _torch_device(torch)
    with torch.no_grad():
        model = model.to(device)
        model.eval()
        return model(data.to(device))


def pytorch_output_fn(prediction: Any, accept: str) -> Any:
    """The prediction encoded as the first supported type of the Accept list."""
    torch = _import_torch()
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.detach().cpu().numpy().tolist()
    for content_type in utils.parse_accept(accept):
        if content_type in encoder.SUPPORTED_CONTENT_TYPES:
            return encoder.encode(prediction, content_type)
    raise UnsupportedFormatError(accept)


# -- Hugging Face --------------------------------------------------------------------------------

# Architecture name endings and the pipeline task they serve (config.json "architectures").
_ARCHITECTURE_TASKS = (
    ("TapasForQuestionAnswering", "table-question-answering"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForTokenClassification", "token-classification"),
    ("ForSequenceClassification", "text-classification"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
)


def _huggingface_task(model_dir: Path) -> str:
    task = os.environ.get(HF_TASK_VARIABLE)
    if task:
        return task
    config = model_dir / HUGGINGFACE_CONFIG_FILE
    architectures: Iterable[str] = ()
    if config.is_file():
        architectures = json.loads(config.read_text()).get("architectures") or ()
    for architecture in architectures:
        for ending, inferred in _ARCHITECTURE_TASKS:
            if architecture.endswith(ending):
                return inferred
    raise ValueError(f"Set {HF_TASK_VARIABLE} in the model's environment: no task is known for {model_dir}.")


def huggingface_model_fn(model_dir: str) -> Any:
    """``transformers.pipeline`` of the task ``HF_TASK`` names (or config.json implies), on the CPU."""
    import transformers  # only when a Hugging Face model is served (never installed by this project)

    return transformers.pipeline(task=_huggingface_task(Path(model_dir)), model=model_dir, device=-1)


def huggingface_input_fn(input_data: bytes | str, content_type: str) -> Any:
    """The JSON document of the request."""
    if content_type != content_types.JSON:
        raise ValueError(f"Content type {content_type} is not supported locally by the huggingface defaults (JSON).")
    return json.loads(input_data)


def huggingface_predict_fn(data: Any, model: Any) -> Any:
    """The pipeline on ``inputs``, with ``parameters`` as keyword arguments."""
    if not isinstance(data, dict):
        return model(data)
    inputs = data.pop("inputs", data)
    parameters = data.pop("parameters", None)
    return model(inputs, **parameters) if parameters is not None else model(inputs)


def huggingface_output_fn(prediction: Any, accept: str) -> str:
    """The prediction as JSON."""
    if _media_type(accept)[0] != content_types.JSON:
        raise ValueError(f"Accept {accept} is not supported locally by the huggingface defaults (JSON).")
    return encoder.encode(prediction, content_types.JSON)


# -- the frameworks ------------------------------------------------------------------------------

_INFERENCE_TOOLKIT = DefaultInferenceHandler()

CUSTOM = Framework(
    name="custom",
    model_fn=_INFERENCE_TOOLKIT.default_model_fn,
    input_fn=_INFERENCE_TOOLKIT.default_input_fn,
    predict_fn=_INFERENCE_TOOLKIT.default_predict_fn,
    output_fn=_INFERENCE_TOOLKIT.default_output_fn,
)
SKLEARN = Framework(
    name="sklearn",
    model_fn=no_model_fn,
    input_fn=sklearn_input_fn,
    predict_fn=sklearn_predict_fn,
    output_fn=containers_output_fn,
    missing_content_type=content_types.JSON,
)
XGBOOST_SCRIPT = Framework(
    name="xgboost",
    model_fn=no_model_fn,
    input_fn=xgboost_input_fn,
    predict_fn=xgboost_predict_fn,
    output_fn=containers_output_fn,
    missing_content_type=content_types.JSON,
)
XGBOOST_ALGORITHM = Framework(
    name="xgboost",
    model_fn=xgboost_algorithm_model_fn,
    input_fn=xgboost_algorithm_input_fn,
    predict_fn=xgboost_algorithm_predict_fn,
    output_fn=xgboost_algorithm_output_fn,
    decodes_utf8=False,
    default_accept=content_types.CSV,
    artefacts=(XGBOOST_MODEL_FILE,),
)
PYTORCH = Framework(
    name="pytorch",
    model_fn=pytorch_model_fn,
    input_fn=pytorch_input_fn,
    predict_fn=pytorch_predict_fn,
    output_fn=pytorch_output_fn,
    required_package="torch",
    artefacts=(PYTORCH_MODEL_FILE, "*.pt", "*.pth"),
)
HUGGINGFACE = Framework(
    name="huggingface",
    model_fn=huggingface_model_fn,
    input_fn=huggingface_input_fn,
    predict_fn=huggingface_predict_fn,
    output_fn=huggingface_output_fn,
    accept_from_environment=False,
    error_status=400,
    honours_toolkit_status=False,
    required_package="transformers",
    artefacts=(HUGGINGFACE_CONFIG_FILE,),
)

_WITH_CODE = {framework.name: framework for framework in (SKLEARN, XGBOOST_SCRIPT, PYTORCH, HUGGINGFACE, CUSTOM)}
_WITHOUT_CODE = {framework.name: framework for framework in (XGBOOST_ALGORITHM, PYTORCH, HUGGINGFACE)}


def framework_for(name: str, *, has_entry_point: bool) -> Framework | None:
    """The defaults of framework ``name`` for a model with or without an entry point in ``code/``.

    None when that framework's container cannot serve a model without code (scikit-learn, custom).

    Raises
    ------
    KeyError
        When ``name`` is not one of ``FRAMEWORKS``.
    """
    if name not in _WITH_CODE:
        raise KeyError(name)
    return _WITH_CODE[name] if has_entry_point else _WITHOUT_CODE.get(name)
