"""The local SageMaker control plane: models, endpoint configurations and endpoints.

A WSGI middleware in front of moto's server app. It answers the SageMaker API's
``CreateModel``, ``CreateEndpointConfig``, ``CreateEndpoint``, ``UpdateEndpoint``, their
``Describe*`` and ``Delete*`` calls (JSON 1.1, ``X-Amz-Target: SageMaker.<Operation>``) and
hosts each endpoint in the local SageMaker runtime, so that one code path creates an endpoint
here and on AWS, and ``services apply`` against a running local runtime serves a model at once.

What it copies from AWS:

- ``CreateEndpoint`` and ``UpdateEndpoint`` answer at once; the endpoint is ``Creating`` or
  ``Updating`` while the model loads (``model_fn`` runs then, as a container loads its model
  before answering ``/ping``), then ``InService``, or ``Failed`` with a ``FailureReason`` that
  names the file and the exception. A failed update rolls back: the endpoint stays
  ``InService`` on its previous configuration, with the ``FailureReason`` of the update.
- The framework is the image's: ``sagemaker-scikit-learn`` images get the scikit-learn
  container's default handlers, ``sagemaker-xgboost`` XGBoost's, and so on; any other image is
  a custom container (the toolkit's bare defaults).
- The container environment (``Environment``): ``SAGEMAKER_PROGRAM`` names the entry point
  under ``code/`` (``inference.py`` by default), the rest reaches the model's code.
- Names already taken, unknown names and configurations naming unknown models are
  ``ValidationException`` errors with SageMaker's wording.

Local differences, on purpose: ``ModelDataUrl`` may also be a ``file://`` URI of a directory or
a ``model.tar.gz`` (AWS takes ``s3://`` only; the SageMaker Python SDK's local mode takes
``file://`` too), so a model is served from anywhere on disk without an upload; an ``s3://``
``model.tar.gz`` is read from the local S3 (and a failure reason names its files in
``/opt/ml/model``, where a container finds them, not in the local scratch copy). Instance types
and counts are recorded, not provisioned: each endpoint is one pool of worker threads
(``MaxConcurrentInvocationsPerInstance`` of the async configuration, else 2).
``ExecutionRoleArn`` is not assumed. Other SageMaker operations go to moto.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..framework_images import framework_of_image

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

_log = logging.getLogger(__name__)

_TARGET_PREFIX = "SageMaker."
_DEFAULT_CONCURRENCY = 2
_CONTAINER_MODEL_DIR = "/opt/ml/model"


class _ValidationError(Exception):
    def __init__(self, message: str, code: str = "ValidationException") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Model:
    name: str
    arn: str
    container: dict[str, Any]
    role: str
    created: datetime


@dataclass
class _EndpointConfig:
    name: str
    arn: str
    variants: list[dict[str, Any]]
    async_config: dict[str, Any] | None
    created: datetime


@dataclass
class _Endpoint:
    name: str
    arn: str
    config_name: str
    status: str
    created: datetime
    modified: datetime
    failure_reason: str | None = None
    # The configuration being rolled out by an update, while the endpoint is Updating.
    pending_config: str | None = None
    # Unpacked model directories of this endpoint, removed when it is deleted or replaced.
    scratch: list[Path] = field(default_factory=list)


class LocalSageMakerControlPlane:
    """Keeps models, configurations and endpoints; hosts endpoints in ``runtime``.

    Parameters
    ----------
    runtime
        The local SageMaker runtime (``add_endpoint`` loads a model at once and raises
        ``ModelLoadError`` when it cannot; ``remove_endpoint`` stops one).
    client_factory
        Returns boto3 clients of the local AWS (``"s3"``: reading ``s3://`` model data).
    region, account_id
        Used in ARNs.
    logger
        Receives one line per endpoint event worth telling.
    """

    def __init__(
        self,
        runtime: Any,
        client_factory: Callable[[str], Any],
        region: str = "us-east-1",
        account_id: str = "123456789012",
        logger: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self._client_factory = client_factory
        self.region = region
        self.account_id = account_id
        self._logger = logger or _log.info
        self._models: dict[str, _Model] = {}
        self._configs: dict[str, _EndpointConfig] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.RLock()
        self._scratch_root = Path(tempfile.mkdtemp(prefix="ensemble-gateway-models-"))
        self._threads: list[threading.Thread] = []

    # -- WSGI -------------------------------------------------------------------------------------
    def middleware(self, app: WSGIApplication) -> WSGIApplication:
        """Wrap ``app``: the control-plane operations above are answered here, all else goes on."""
        operations = {
            "CreateModel": self._create_model,
            "DescribeModel": self._describe_model,
            "DeleteModel": self._delete_model,
            "CreateEndpointConfig": self._create_endpoint_config,
            "DescribeEndpointConfig": self._describe_endpoint_config,
            "DeleteEndpointConfig": self._delete_endpoint_config,
            "CreateEndpoint": self._create_endpoint,
            "UpdateEndpoint": self._update_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "DeleteEndpoint": self._delete_endpoint,
        }

        def sagemaker_control_middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            operation = operations.get(target[len(_TARGET_PREFIX) :]) if target.startswith(_TARGET_PREFIX) else None
            if operation is None or environ.get("REQUEST_METHOD") != "POST":
                return app(environ, start_response)
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                status, document = "200 OK", operation(body if isinstance(body, dict) else {})
            except _ValidationError as error:
                status, document = "400 Bad Request", {"__type": error.code, "message": error.message}
            except Exception as error:  # a bug must not surface as a dropped connection
                _log.exception("local SageMaker control plane failed")
                status, document = "500 Internal Server Error", {"__type": "InternalFailure", "message": str(error)}
            payload = json.dumps(document, default=_epoch).encode()
            start_response(
                status,
                [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(payload))),
                    ("x-amzn-RequestId", str(uuid.uuid4())),
                ],
            )
            return [payload]

        return sagemaker_control_middleware

    # -- models -----------------------------------------------------------------------------------
    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    def _create_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "ModelName")
        container = body.get("PrimaryContainer") or (body.get("Containers") or [None])[0]
        if not isinstance(container, dict) or not container.get("Image"):
            raise _ValidationError("PrimaryContainer.Image is required.")
        if not (container.get("ModelDataUrl") or container.get("ModelDataSource")):
            raise _ValidationError("The local runtime needs PrimaryContainer.ModelDataUrl or ModelDataSource.")
        _model_data_location(container)  # refuse a malformed location now, as CreateModel does
        with self._lock:
            if name in self._models:
                raise _ValidationError(f'Cannot create already existing model "{self._arn("model", name)}".')
            model = _Model(name, self._arn("model", name), container, str(body.get("ExecutionRoleArn", "")), _now())
            self._models[name] = model
        return {"ModelArn": model.arn}

    def _describe_model(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self._model(_required(body, "ModelName"))
        return {
            "ModelName": model.name,
            "ModelArn": model.arn,
            "PrimaryContainer": model.container,
            "ExecutionRoleArn": model.role,
            "CreationTime": model.created,
        }

    def _delete_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "ModelName")
        with self._lock:
            if self._models.pop(name, None) is None:
                raise _ValidationError(f'Could not find model "{self._arn("model", name)}".')
        return {}

    def _model(self, name: str) -> _Model:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise _ValidationError(f'Could not find model "{self._arn("model", name)}".')
        return model

    # -- endpoint configurations ------------------------------------------------------------------
    def _create_endpoint_config(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointConfigName")
        variants = body.get("ProductionVariants")
        if not isinstance(variants, list) or not variants:
            raise _ValidationError("ProductionVariants must name at least one variant.")
        if len(variants) > 1:
            raise _ValidationError("The local runtime hosts one production variant per endpoint.")
        for variant in variants:
            self._model(str(variant.get("ModelName", "")))
        async_config = body.get("AsyncInferenceConfig")
        if async_config is not None and not (async_config.get("OutputConfig") or {}).get("S3OutputPath"):
            raise _ValidationError("AsyncInferenceConfig.OutputConfig.S3OutputPath is required.")
        with self._lock:
            if name in self._configs:
                raise _ValidationError(
                    f'Cannot create already existing endpoint configuration "{self._arn("endpoint-config", name)}".'
                )
            config = _EndpointConfig(name, self._arn("endpoint-config", name), variants, async_config, _now())
            self._configs[name] = config
        return {"EndpointConfigArn": config.arn}

    def _describe_endpoint_config(self, body: dict[str, Any]) -> dict[str, Any]:
        config = self._config(_required(body, "EndpointConfigName"))
        document: dict[str, Any] = {
            "EndpointConfigName": config.name,
            "EndpointConfigArn": config.arn,
            "ProductionVariants": config.variants,
            "CreationTime": config.created,
        }
        if config.async_config is not None:
            document["AsyncInferenceConfig"] = config.async_config
        return document

    def _delete_endpoint_config(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointConfigName")
        with self._lock:
            if self._configs.pop(name, None) is None:
                raise _ValidationError(f'Could not find endpoint configuration "{self._arn("endpoint-config", name)}".')
        return {}

    def _config(self, name: str) -> _EndpointConfig:
        with self._lock:
            config = self._configs.get(name)
        if config is None:
            raise _ValidationError(f'Could not find endpoint configuration "{self._arn("endpoint-config", name)}".')
        return config

    # -- endpoints --------------------------------------------------------------------------------
    def _create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointName")
        config = self._config(_required(body, "EndpointConfigName"))
        with self._lock:
            if name in self._endpoints:
                raise _ValidationError(f'Cannot create already existing endpoint "{self._arn("endpoint", name)}".')
            now = _now()
            endpoint = _Endpoint(name, self._arn("endpoint", name), config.name, "Creating", now, now)
            endpoint.pending_config = config.name
            self._endpoints[name] = endpoint
        self._roll_out(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def _update_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointName")
        config = self._config(_required(body, "EndpointConfigName"))
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                raise _ValidationError(f'Could not find endpoint "{self._arn("endpoint", name)}".')
            if endpoint.status == "Failed":
                raise _ValidationError(
                    f'Cannot update failed endpoint "{endpoint.arn}"; delete it and create it again.'
                )
            if endpoint.status != "InService":
                raise _ValidationError(f'Cannot update in-progress endpoint "{endpoint.arn}".')
            endpoint.status = "Updating"
            endpoint.pending_config = config.name
            endpoint.failure_reason = None
            endpoint.modified = _now()
        self._roll_out(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def _roll_out(self, endpoint: _Endpoint, config: _EndpointConfig) -> None:
        thread = threading.Thread(
            target=self._host, args=(endpoint, config), name=f"sagemaker-endpoint-{endpoint.name}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _host(self, endpoint: _Endpoint, config: _EndpointConfig) -> None:
        """Load the configuration's model into the runtime, then settle the endpoint's status."""
        from .sagemaker import LocalEndpoint, ModelLoadError

        variant = config.variants[0]
        scratch: Path | None = None
        model_dir: Path | None = None
        try:
            model = self._model(str(variant.get("ModelName", "")))
            model_dir, scratch = self._model_directory(endpoint.name, model.container)
            environment = {str(k): str(v) for k, v in (model.container.get("Environment") or {}).items()}
            program = environment.get("SAGEMAKER_PROGRAM", "inference.py")
            output = (config.async_config or {}).get("OutputConfig") or {}
            notifications = output.get("NotificationConfig") or {}
            client_config = (config.async_config or {}).get("ClientConfig") or {}
            self.runtime.add_endpoint(
                LocalEndpoint(
                    name=endpoint.name,
                    model_dir=model_dir,
                    mode="async" if config.async_config is not None else "realtime",
                    output_path=str(output.get("S3OutputPath", "")),
                    failure_path=str(output.get("S3FailurePath", "")),
                    success_topic_arn=str(notifications.get("SuccessTopic", "")),
                    error_topic_arn=str(notifications.get("ErrorTopic", "")),
                    max_concurrency=int(
                        client_config.get("MaxConcurrentInvocationsPerInstance") or _DEFAULT_CONCURRENCY
                    ),
                    variant=str(variant.get("VariantName") or "AllTraffic"),
                    framework=framework_of_image(str(model.container.get("Image", ""))),
                    program=program,
                    environment=environment,
                )
            )
        except (ModelLoadError, _ValidationError, ValueError, OSError) as error:
            reason = getattr(error, "message", None) or str(error)
            if scratch is not None:
                # Model data downloaded and unpacked here is what a container sees in
                # /opt/ml/model: the reason names its files there, as on AWS, not our scratch copy.
                if model_dir is not None:
                    reason = reason.replace(str(model_dir), _CONTAINER_MODEL_DIR)
                shutil.rmtree(scratch, ignore_errors=True)
            self._settle(endpoint, config.name, failure=reason)
            return
        except Exception as error:  # never leave an endpoint Creating forever
            _log.exception("hosting endpoint %s failed", endpoint.name)
            self._settle(endpoint, config.name, failure=f"{type(error).__name__}: {error}")
            return
        self._settle(endpoint, config.name, scratch=scratch)

    def _settle(
        self, endpoint: _Endpoint, config_name: str, failure: str | None = None, scratch: Path | None = None
    ) -> None:
        with self._lock:
            if self._endpoints.get(endpoint.name) is not endpoint or endpoint.pending_config != config_name:
                return  # deleted, or superseded by a later update, meanwhile
            endpoint.pending_config = None
            endpoint.modified = _now()
            endpoint.failure_reason = failure
            if failure is None:
                old = endpoint.scratch
                endpoint.scratch = [scratch] if scratch is not None else []
                endpoint.config_name = config_name
                endpoint.status = "InService"
            else:
                old = []
                # A failed update rolls back to the configuration that was serving.
                endpoint.status = "InService" if endpoint.status == "Updating" else "Failed"
        for directory in old:
            shutil.rmtree(directory, ignore_errors=True)
        if failure is None:
            self._logger(f"sagemaker endpoint {endpoint.name}: InService ({config_name})")
        else:
            self._logger(f"sagemaker endpoint {endpoint.name}: {endpoint.status}, {failure}")

    def _describe_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointName")
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                raise _ValidationError(f'Could not find endpoint "{self._arn("endpoint", name)}".')
            config = self._configs.get(endpoint.config_name)
            document: dict[str, Any] = {
                "EndpointName": endpoint.name,
                "EndpointArn": endpoint.arn,
                "EndpointConfigName": endpoint.config_name,
                "EndpointStatus": endpoint.status,
                "CreationTime": endpoint.created,
                "LastModifiedTime": endpoint.modified,
            }
            if endpoint.failure_reason:
                document["FailureReason"] = endpoint.failure_reason
            if config is not None:
                document["ProductionVariants"] = [
                    {
                        "VariantName": v.get("VariantName") or "AllTraffic",
                        "CurrentInstanceCount": int(v.get("InitialInstanceCount") or 1),
                    }
                    for v in config.variants
                ]
                if config.async_config is not None:
                    document["AsyncInferenceConfig"] = config.async_config
        return document

    def _delete_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _required(body, "EndpointName")
        with self._lock:
            endpoint = self._endpoints.pop(name, None)
        if endpoint is None:
            raise _ValidationError(f'Could not find endpoint "{self._arn("endpoint", name)}".')
        self.runtime.remove_endpoint(name)
        for directory in endpoint.scratch:
            shutil.rmtree(directory, ignore_errors=True)
        return {}

    # -- model data -------------------------------------------------------------------------------
    def _model_directory(self, endpoint: str, container: dict[str, Any]) -> tuple[Path, Path | None]:
        """The directory to serve: a local directory as it is, an archive unpacked into scratch."""
        from ..model_package import unpack_model_archive

        scheme, location, compressed = _model_data_location(container)
        if scheme == "file":
            path = Path(location)
            if path.is_dir():
                return path, None
            if not path.is_file():
                raise _ValidationError(f"Could not find model data at file://{location}.")
            scratch = self._scratch_root / f"{endpoint}-{uuid.uuid4().hex[:8]}"
            return unpack_model_archive(path, scratch), scratch
        bucket, _, key = location.partition("/")
        scratch = self._scratch_root / f"{endpoint}-{uuid.uuid4().hex[:8]}"
        s3 = self._client_factory("s3")
        try:
            if not compressed:
                paginator = s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=key):
                    for item in page.get("Contents", []):
                        relative = item["Key"][len(key) :].lstrip("/")
                        if relative:
                            target = scratch / relative
                            target.parent.mkdir(parents=True, exist_ok=True)
                            s3.download_file(bucket, item["Key"], str(target))
                return scratch, scratch
            scratch.mkdir(parents=True)
            archive = scratch / "model.tar.gz"
            s3.download_file(bucket, key, str(archive))
            unpack_model_archive(archive, scratch / "model")
            return scratch / "model", scratch
        except Exception as error:
            shutil.rmtree(scratch, ignore_errors=True)
            if hasattr(error, "message"):
                raise
            raise _ValidationError(f"Could not download model data from s3://{location}: {error}") from None

    def shutdown(self) -> None:
        """Forget every endpoint and remove the unpacked model directories."""
        with self._lock:
            self._endpoints.clear()
        shutil.rmtree(self._scratch_root, ignore_errors=True)


def _model_data_location(container: dict[str, Any]) -> tuple[str, str, bool]:
    """(scheme, bucket/key or absolute path, compressed) of a container's model data."""
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if source:
        uri = str(source.get("S3Uri", ""))
        compressed = str(source.get("CompressionType", "None")) == "Gzip"
    else:
        uri = str(container.get("ModelDataUrl", ""))
        compressed = True
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return "file", urllib.parse.unquote(parsed.path), compressed
    if parsed.scheme == "s3" and parsed.netloc and parsed.path.strip("/"):
        return "s3", f"{parsed.netloc}/{parsed.path.lstrip('/')}", compressed
    raise _ValidationError(f"Model data location '{uri}' must be an s3:// URI (or file:// locally).")


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _ValidationError(f"1 validation error detected: Value null at '{name}' failed to satisfy constraint.")
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
