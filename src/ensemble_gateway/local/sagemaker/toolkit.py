"""The SageMaker inference toolkit's request sequence, as plain functions.

Pure on purpose: no threads, no HTTP, no boto3, no import machinery. ``hosting`` imports the
model's code and calls these; the unit tests call them directly. The framework containers' default
handlers are in ``frameworks``; the encoders, decoders, content types and errors are the PyPI
package ``sagemaker-inference`` itself (the toolkit's own code), not copies.

What the containers do and this module reproduces:

- **Handlers.** A model's module may define ``model_fn``, ``input_fn``, ``predict_fn``,
  ``output_fn`` or ``transform_fn``, and ``pre_model_fn`` / ``model_warmup_fn`` run around
  ``model_fn``. Each missing handler is the framework's default. ``transform_fn`` replaces the
  other three and cannot be combined with them (``ValueError``, the toolkit's message).
- **Context.** A handler declared with one parameter more than the toolkit passes receives a
  context object last; any other count is a ``TypeError`` ("model_fn takes 3 arguments but 1
  were given."), as ``sagemaker_inference.transformer.Transformer._run_handler_function`` does.
- **Request.** A missing Content-Type becomes the framework's default (``application/json`` in
  the scikit-learn and XGBoost containers, whose sagemaker-containers ``Request`` says so; none
  elsewhere). The body reaches the handlers as ``str`` for exactly ``application/json`` and
  ``text/csv`` (``content_types.UTF8_TYPES``; ``application/json; charset=utf-8`` stays bytes, as
  there), as ``bytes`` otherwise; XGBoost's algorithm mode keeps bytes, as its server does. An
  Accept missing or ``*/*`` becomes the endpoint's ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or the
  framework's default (``application/json``; ``text/csv`` in XGBoost's algorithm mode; the Hugging
  Face toolkit always uses ``application/json``).
- **Result.** ``output_fn`` / ``transform_fn`` may return ``(body, content_type)``; a Flask or
  werkzeug ``Response`` (anything with ``get_data()``, ``content_type`` or ``mimetype`` and
  ``status_code``), whose status >= 400 is a model error with that status and its body as the
  message; or a bare body, whose content type is then the Accept value. A ``str`` body is sent
  as UTF-8, other values that are not bytes as JSON, as the model server serialises them.
- **Errors.** A toolkit error (``sagemaker_inference.errors.BaseInferenceToolkitError``) answers
  its ``status_code`` and ``message``; any other exception the framework's status (500; the
  Hugging Face toolkit answers every failure 400) and ``str(exception)``. The 415 and 406 for an
  unsupported Content-Type or Accept come from the scikit-learn and XGBoost defaults, as
  sagemaker-containers' transformer answers them; containers built on sagemaker-inference alone
  (``custom``, PyTorch) answer 500, as its ``Transformer`` does.

Local differences: the error message is the model's own text, also where a Flask container would
answer a bare "500 Internal Server Error" page; the failure detail (the asynchronous failure
object) is that message and the traceback, as the toolkit's error body is.
"""

from __future__ import annotations

import inspect
import json
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagemaker_inference import content_types
from sagemaker_inference.errors import BaseInferenceToolkitError

__all__ = [
    "ACCEPT_ENVIRONMENT_VARIABLE",
    "HANDLER_NAMES",
    "Framework",
    "Handlers",
    "ModelContext",
    "ModelError",
    "call_handler",
    "encode_body",
    "error_message",
    "invoke",
    "model_error",
    "negotiate_accept",
    "normalise_result",
    "request_data",
    "resolve_handlers",
]

#: The Model environment variable naming the Accept used when a request has none (or ``*/*``).
ACCEPT_ENVIRONMENT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"

#: The functions a model's module may define, as the toolkit looks them up.
HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn", "pre_model_fn", "model_warmup_fn")

_REPLACED_BY_TRANSFORM_FN = ("input_fn", "predict_fn", "output_fn")

Handler = Callable[..., Any]


@dataclass
class ModelContext:
    """What a handler declared with one extra parameter receives: a small toolkit ``Context``.

    Parameters
    ----------
    model_name : str
        The endpoint's name.
    system_properties : dict
        ``model_dir``, ``gpu_id`` (None: no GPU here), ``batch_size`` (1) and ``server_name``.
    request_headers : dict[str, str]
        The invocation's HTTP headers, without the caller's credentials (empty while loading).
    """

    model_name: str
    system_properties: dict[str, Any]
    request_headers: dict[str, str] = field(default_factory=dict)

    def get_request_header(self, idx: int, key: str) -> str | None:
        """The value of request header ``key`` (case-insensitive); ``idx`` is the batch index (always 0)."""
        for name, value in self.request_headers.items():
            if name.lower() == key.lower():
                return value
        return None


@dataclass(frozen=True)
class Framework:
    """One framework container's default handlers and request conventions.

    Parameters
    ----------
    name : str
        The framework, one of ``FRAMEWORKS``.
    model_fn, input_fn, predict_fn, output_fn : callable
        The defaults for the handlers a model's module leaves out.
    missing_content_type : str or None
        The Content-Type a request without one is handled as.
    decodes_utf8 : bool
        Whether ``application/json`` and ``text/csv`` bodies reach the handlers as ``str``.
    default_accept : str
        The Accept of a request without one (or with ``*/*``).
    accept_from_environment : bool
        Whether ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` overrides ``default_accept``.
    error_status : int
        The status of a failure that is not a toolkit error.
    honours_toolkit_status : bool
        Whether a toolkit error answers its own ``status_code`` (else ``error_status``).
    required_package : str or None
        A Python package the container always has and the defaults import (``torch``...).
    artefacts : tuple of str
        Without an entry point in ``code/``: file name patterns of which the defaults need one in
        the model directory (empty: the defaults cannot serve a model without code).
    """

    name: str
    model_fn: Handler
    input_fn: Handler
    predict_fn: Handler
    output_fn: Handler
    missing_content_type: str | None = None
    decodes_utf8: bool = True
    default_accept: str = content_types.JSON
    accept_from_environment: bool = True
    error_status: int = 500
    honours_toolkit_status: bool = True
    required_package: str | None = None
    artefacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Handlers:
    """The handlers an endpoint runs: the model's own where it defines them, else the framework's.

    ``defined`` names the ones the model's module defines.
    """

    model_fn: Handler
    input_fn: Handler
    predict_fn: Handler
    output_fn: Handler
    transform_fn: Handler | None
    pre_model_fn: Handler | None
    model_warmup_fn: Handler | None
    defined: frozenset[str]


class ModelError(Exception):
    """The model answered with an error status, as the toolkit's error response does.

    Parameters
    ----------
    status : int
        The HTTP status the container answers (400..599).
    message : str
        The model's own message, as SageMaker reports it (``OriginalMessage``).
    detail : str
        The message and the traceback: the toolkit's error body (the asynchronous failure object).
    """

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail or message

    def phrase(self, source: str) -> str:
        """SageMaker's wording of this error, ``source`` being ``"primary"`` (real-time) or ``"model"`` (async)."""
        kind = "client" if 400 <= self.status < 500 else "server"
        return f'Received {kind} error ({self.status}) from {source} with message "{self.message}"'


def resolve_handlers(module: object | None, framework: Framework) -> Handlers:
    """The handlers of ``module`` (None: no entry point), each missing one taken from ``framework``.

    Raises
    ------
    ValueError
        When the module defines ``transform_fn`` together with input, predict or output handlers.
    """
    own = {name: getattr(module, name) for name in HANDLER_NAMES if getattr(module, name, None) is not None}
    if "transform_fn" in own and any(name in own for name in _REPLACED_BY_TRANSFORM_FN):
        raise ValueError(
            "Cannot use transform_fn implementation in conjunction with "
            "input_fn, predict_fn, and/or output_fn implementation"
        )
    return Handlers(
        model_fn=own.get("model_fn", framework.model_fn),
        input_fn=own.get("input_fn", framework.input_fn),
        predict_fn=own.get("predict_fn", framework.predict_fn),
        output_fn=own.get("output_fn", framework.output_fn),
        transform_fn=own.get("transform_fn"),
        pre_model_fn=own.get("pre_model_fn"),
        model_warmup_fn=own.get("model_warmup_fn"),
        defined=frozenset(own),
    )


def call_handler(func: Handler, context: ModelContext, *args: Any) -> Any:
    """Call ``func`` as the toolkit does: with ``context`` appended when it takes one parameter more.

    Raises
    ------
    TypeError
        When ``func`` takes neither ``len(args)`` nor ``len(args) + 1`` parameters.
    """
    try:
        count = len(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: call it as given
        return func(*args)
    if count == len(args):
        return func(*args)
    if count == len(args) + 1:
        return func(*args, context)
    name = getattr(func, "__name__", "handler")
    raise TypeError(f"{name} takes {count} arguments but {len(args)} were given.")


def negotiate_accept(accept: str | None, environment: Mapping[str, str], framework: Framework) -> str:
    """The Accept the handlers see: the request's, unless it is missing or ``*/*``."""
    if accept and accept != content_types.ANY:
        return accept
    if framework.accept_from_environment and environment.get(ACCEPT_ENVIRONMENT_VARIABLE):
        return environment[ACCEPT_ENVIRONMENT_VARIABLE]
    return framework.default_accept


def request_data(body: bytes, content_type: str | None, framework: Framework) -> bytes | str:
    """The body as the handlers receive it: ``str`` for exactly the toolkit's UTF-8 types."""
    if framework.decodes_utf8 and content_type in content_types.UTF8_TYPES:
        return body.decode("utf-8")
    return body


def _json_default(value: Any) -> Any:
    for attribute in ("tolist", "item"):  # numpy arrays and scalars, without importing numpy here
        method = getattr(value, attribute, None)
        if callable(method):
            return method()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_body(body: Any) -> bytes:
    """The bytes sent for a handler's body: bytes as they are, ``str`` as UTF-8, other values as JSON."""
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, default=_json_default).encode("utf-8")


def _is_response(value: Any) -> bool:
    """A Flask/werkzeug ``Response`` or anything shaped like one."""
    return (
        callable(getattr(value, "get_data", None))
        and hasattr(value, "status_code")
        and (hasattr(value, "content_type") or hasattr(value, "mimetype"))
    )


def normalise_result(result: Any, accept: str) -> tuple[bytes, str]:
    """The body and content type of an ``output_fn`` or ``transform_fn`` result.

    Raises
    ------
    ModelError
        When the result is a response with a status of 400 or more (its body is the message).
    """
    if isinstance(result, tuple):
        body, content_type = result[0], result[1]
    elif _is_response(result):
        body = result.get_data()
        content_type = getattr(result, "content_type", None) or getattr(result, "mimetype", None)
        status = int(result.status_code)
        if status >= 400:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            raise ModelError(status, text, text)
    else:
        body, content_type = result, None
    return encode_body(body), str(content_type or accept)


def error_message(error: BaseException) -> str:
    """The model's own message for ``error``: a toolkit error's ``message``, else ``str(error)``."""
    # str() of a toolkit error would be the tuple of its constructor's arguments: take its message.
    text = str(error.message) if isinstance(error, BaseInferenceToolkitError) else str(error)
    return text or type(error).__name__


def model_error(error: BaseException, framework: Framework) -> ModelError:
    """The model error a container answers for ``error`` raised by the handlers."""
    status = framework.error_status
    if framework.honours_toolkit_status and isinstance(error, BaseInferenceToolkitError):
        code = error.status_code
        if isinstance(code, int) and 400 <= code <= 599:
            status = int(code)
    message = error_message(error)
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return ModelError(status, message, f"{message}\n{trace}")


def invoke(
    handlers: Handlers,
    framework: Framework,
    model: Any,
    body: bytes,
    content_type: str | None,
    accept: str | None,
    context: ModelContext,
    environment: Mapping[str, str],
) -> tuple[bytes, str]:
    """Run one request through the toolkit's sequence: the response body and its content type.

    Parameters
    ----------
    handlers, framework
        From ``resolve_handlers`` and the framework of the endpoint.
    model
        What ``model_fn`` returned.
    body, content_type, accept
        The request, as the caller sent it (headers possibly missing).
    context
        Passed to handlers that take one parameter more.
    environment
        The endpoint's Model environment (``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).

    Raises
    ------
    ModelError
        Whatever the handlers raised, or an error response they returned, as the container answers it.
    """
    try:
        content_type = content_type or framework.missing_content_type
        accept = negotiate_accept(accept, environment, framework)
        data = request_data(body, content_type, framework)
        if handlers.transform_fn is not None:
            result = call_handler(handlers.transform_fn, context, model, data, content_type, accept)
        else:
            decoded = call_handler(handlers.input_fn, context, data, content_type)
            prediction = call_handler(handlers.predict_fn, context, decoded, model)
            result = call_handler(handlers.output_fn, context, prediction, accept)
        return normalise_result(result, accept)
    except ModelError:
        raise
    except (Exception, SystemExit) as error:  # the model's own failure, whatever it is
        raise model_error(error, framework) from error
