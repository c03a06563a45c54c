"""Recording what the local runtime does: every AWS API call and every function invocation.

Installed from outside the runtime, at benchmark time only:

- ``botocore.client.BaseClient._make_api_call`` is wrapped, so every API call made in this process
  is seen, whatever session or client made it: the handlers' shared session
  (``ensemble_gateway.adapters.aws._session()``), the runtime's session (pollers playing the event
  source mappings, the local SageMaker runtime) and the clients moto's Step Functions engine
  creates to invoke Lambda. A call is attributed by who made it: a function invocation (thread-local
  context set by the wrapper below), a poller thread, a SageMaker worker thread, or Step Functions.
- ``FunctionRegistry.handler`` (one runtime instance) is wrapped so each handler call is recorded
  with its function, timings and the prediction IDs its event is about, and the calls it makes
  carry its invocation ID.

The benchmark's own calls (reading records, execution histories) run inside ``untraced()``.
DynamoDB read and write units are estimated from item sizes with DynamoDB's published rules
(``DynamoCapacity``), including the writes to global secondary indexes.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

_local = threading.local()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Calls made inside are the benchmark's own and are not recorded."""
    previous = getattr(_local, "tag", None)
    _local.tag = "bench"
    try:
        yield
    finally:
        _local.tag = previous


@dataclass
class Call:
    """One AWS API call."""

    service: str
    operation: str
    t0: float
    t1: float
    thread: str
    source: str  # function | event-source | sagemaker | stepfunctions | other
    invocation: int | None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass
class Invocation:
    """One handler invocation (what Lambda would bill as one request)."""

    id: int
    function: str  # short name: process-input, notifications, ...
    t0: float
    t1: float
    thread: str
    trigger: str  # api | sqs | sns | stepfunctions | schedule | other
    info: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def short_name(handler_path: str) -> str:
    """``ensemble_gateway.handlers.process_input.handler`` → ``process-input``."""
    module = handler_path.rpartition(".")[0]
    return module.rpartition(".")[2].replace("_", "-")


def prediction_id_of_key(key: str) -> str | None:
    for prefix in ("uploads/", "inputs/", "steps/", "outputs/", "failures/"):
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            return rest.split("/", 1)[0] or None
    return None


# ----------------------------------------------------------------------------------------------
# DynamoDB capacity units
# ----------------------------------------------------------------------------------------------
def _number_size(text: str) -> int:
    digits = text.strip().lstrip("-").replace(".", "").lstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Size in bytes of one typed attribute value, per DynamoDB's item size rules."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(x).encode()) for x in data)
    if kind == "NS":
        return sum(_number_size(str(x)) for x in data)
    if kind == "BS":
        return sum(len(x) for x in data)
    if kind == "L":
        return 3 + sum(value_size(x) + 1 for x in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass
class _TableSchema:
    keys: list[str]
    indexes: dict[str, tuple[list[str], str]]  # name -> (key attributes, projection type)


class DynamoCapacity:
    """Estimates read/write capacity units per request (on-demand RRU/WRU).

    Rules (DynamoDB developer guide, "Read/write capacity mode" and "Item sizes"): a write costs
    1 WRU per started KB of the larger of the item's old and new image (a failed conditional
    write still costs the item's size); every global secondary index entry written costs 1 WRU
    more, and an update that changes an index key writes it twice (delete + put); a strongly
    consistent read costs 1 RRU per started 4 KB (eventually consistent and index reads: half),
    Query/Scan sum the sizes of the items read; transactions cost twice. Item images are
    shadowed from the requests and responses seen (``ReturnValues=ALL_NEW`` gives the new image).
    """

    def __init__(self) -> None:
        self.schemas: dict[str, _TableSchema] = {}
        self.images: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def load_schemas(self, dynamodb: Any, tables: list[str]) -> None:
        for table in tables:
            description = dynamodb.describe_table(TableName=table)["Table"]
            keys = [k["AttributeName"] for k in description["KeySchema"]]
            indexes = {
                index["IndexName"]: (
                    [k["AttributeName"] for k in index["KeySchema"]],
                    index.get("Projection", {}).get("ProjectionType", "ALL"),
                )
                for index in description.get("GlobalSecondaryIndexes", [])
            }
            self.schemas[table] = _TableSchema(keys, indexes)

    def _key(self, table: str, item_or_key: dict[str, Any]) -> tuple[str, str]:
        schema = self.schemas.get(table)
        names = schema.keys if schema else sorted(item_or_key)
        return table, json.dumps([item_or_key.get(name) for name in names], sort_keys=True, default=str)

    def _index_writes(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        schema = self.schemas.get(table)
        if schema is None:
            return 0
        writes = 0
        for key_names, projection in schema.indexes.values():
            old = tuple(json.dumps(before.get(n), sort_keys=True) for n in key_names) if before else None
            new = tuple(json.dumps(after.get(n), sort_keys=True) for n in key_names) if after else None
            old_indexed = before is not None and all(before.get(n) is not None for n in key_names)
            new_indexed = after is not None and all(after.get(n) is not None for n in key_names)
            if old_indexed and new_indexed and old == new:
                if projection != "KEYS_ONLY" and before != after:
                    writes += 1
                continue
            writes += int(old_indexed) + int(new_indexed)
        return writes

    @staticmethod
    def _read_units(size: int, consistent: bool) -> float:
        return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)

    @staticmethod
    def _write_units(size: int) -> int:
        return max(1, math.ceil(size / 1024))

    def account(self, operation: str, params: dict[str, Any], response: Any, error: str | None) -> dict[str, float]:
        """``{"rru": ..., "wru": ...}`` of one request."""
        with self._lock:
            return self._account(operation, params, response if isinstance(response, dict) else {}, error)

    def _account(
        self, operation: str, params: dict[str, Any], response: dict[str, Any], error: str | None
    ) -> dict[str, float]:
        table = str(params.get("TableName", ""))
        if operation == "GetItem":
            item = response.get("Item")
            if item:
                self.images[self._key(table, params["Key"])] = item
            return {"rru": self._read_units(item_size(item), bool(params.get("ConsistentRead"))), "wru": 0}
        if operation in ("Query", "Scan"):
            items = response.get("Items", [])
            overhead = 100 * len(items) if params.get("IndexName") else 0
            consistent = bool(params.get("ConsistentRead")) and not params.get("IndexName")
            return {"rru": self._read_units(sum(item_size(i) for i in items) + overhead, consistent), "wru": 0}
        if operation == "PutItem":
            return {"rru": 0, "wru": self._put(table, params["Item"], error)}
        if operation == "UpdateItem":
            return {"rru": 0, "wru": self._update(table, params, response, error)}
        if operation == "DeleteItem":
            key = self._key(table, params["Key"])
            before = self.images.pop(key, None)
            units = self._write_units(item_size(before))
            if error is None:
                units += self._index_writes(table, before, None)
            return {"rru": 0, "wru": units}
        if operation == "TransactWriteItems":
            units = 0
            for entry in params.get("TransactItems", []):
                if "Put" in entry:
                    units += 2 * self._put(entry["Put"]["TableName"], entry["Put"]["Item"], error)
                elif "Update" in entry:
                    units += 2 * self._update(entry["Update"]["TableName"], entry["Update"], {}, error)
                else:
                    units += 2
            return {"rru": 0, "wru": units}
        if operation == "BatchGetItem":
            count = sum(len(v) for v in response.get("Responses", {}).values())
            return {"rru": float(max(1, count)), "wru": 0}
        if operation == "BatchWriteItem":
            count = sum(len(v) for v in params.get("RequestItems", {}).values())
            return {"rru": 0, "wru": float(count)}
        return {"rru": 0, "wru": 0}

    def _put(self, table: str, item: dict[str, Any], error: str | None) -> int:
        key = self._key(table, item)
        before = self.images.get(key)
        if error is not None:
            return self._write_units(item_size(before))
        self.images[key] = item
        return self._write_units(max(item_size(before), item_size(item))) + self._index_writes(table, before, item)

    def _update(self, table: str, params: dict[str, Any], response: dict[str, Any], error: str | None) -> int:
        key = self._key(table, params["Key"])
        before = self.images.get(key)
        if error is not None:
            return self._write_units(item_size(before))
        after = response.get("Attributes") if params.get("ReturnValues") == "ALL_NEW" else None
        if after is None:
            # No new image returned: the old one grown by the values written.
            grown = item_size(before) + sum(value_size(v) for v in params.get("ExpressionAttributeValues", {}).values())
            units = self._write_units(grown)
            return units
        self.images[key] = after
        return self._write_units(max(item_size(before), item_size(after))) + self._index_writes(table, before, after)


# ----------------------------------------------------------------------------------------------
# The recorder
# ----------------------------------------------------------------------------------------------
def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _call_info(service: str, operation: str, params: dict[str, Any], response: Any) -> dict[str, Any]:
    """What the analyses need to know about a call (prediction IDs, queue, token, sizes)."""
    info: dict[str, Any] = {}
    response = response if isinstance(response, dict) else {}
    if service == "dynamodb":
        info["table"] = params.get("TableName")
        key = params.get("Key") or params.get("Item") or {}
        pid = key.get("prediction_id", {}).get("S") if isinstance(key, dict) else None
        if pid:
            info["prediction_id"] = pid
        names = params.get("ExpressionAttributeNames", {})
        attributes = response.get("Attributes") or {}
        if operation == "UpdateItem" and "status" in names.values() and attributes:
            info["new_status"] = attributes.get("status", {}).get("S")
    elif service == "s3":
        info["key"] = params.get("Key")
        pid = prediction_id_of_key(str(params.get("Key", "")))
        if pid:
            info["prediction_id"] = pid
        body = params.get("Body")
        if isinstance(body, bytes | bytearray):
            info["bytes"] = len(body)
    elif service == "sqs":
        url = str(params.get("QueueUrl", ""))
        info["queue"] = url.rsplit("/", 1)[-1]
        info["local_only"] = url.endswith("-sns-deliveries")
        if operation == "ReceiveMessage":
            messages = response.get("Messages", [])
            info["messages"] = len(messages)
            ids: list[str] = []
            for message in messages:
                ids.extend(_ids_in_body(message.get("Body", "")))
            info["prediction_ids"] = ids
        elif operation == "SendMessage":
            body = _json(params.get("MessageBody"))
            if isinstance(body, dict) and body.get("prediction_id"):
                info["prediction_id"] = body["prediction_id"]
        elif operation == "DeleteMessageBatch":
            info["messages"] = len(params.get("Entries", []))
    elif service == "sns":
        info["topic"] = str(params.get("TopicArn", "")).rsplit(":", 1)[-1]
        message = _json(params.get("Message"))
        if isinstance(message, dict) and message.get("inferenceId"):
            info["prediction_id"] = message["inferenceId"]
    elif service == "stepfunctions":
        if operation == "StartExecution":
            info["prediction_id"] = params.get("name")
        if "taskToken" in params:
            info["token"] = params["taskToken"]
    elif service == "sagemaker-runtime":
        info["prediction_id"] = params.get("InferenceId")
        info["endpoint"] = params.get("EndpointName")
    elif service == "lambda" and operation == "Invoke":
        payload = params.get("Payload")
        document = _json(payload.decode() if isinstance(payload, bytes | bytearray) else payload)
        if isinstance(document, dict):
            info.update(
                action=document.get("action"),
                step=document.get("step"),
                prediction_id=document.get("ensemble_prediction_id"),
                token=document.get("task_token"),
            )
    return info


def _ids_in_body(body: str) -> list[str]:
    document = _json(body)
    if not isinstance(document, dict):
        return []
    if "Records" in document:
        ids = []
        for record in document["Records"]:
            # S3 notification keys are URL-encoded ('inputs%2F...').
            key = unquote_plus(str(record.get("s3", {}).get("object", {}).get("key", "")))
            pid = prediction_id_of_key(key)
            if pid:
                ids.append(pid)
        return ids
    if document.get("Type") == "Notification":
        message = _json(document.get("Message"))
        return [message["inferenceId"]] if isinstance(message, dict) and message.get("inferenceId") else []
    if document.get("prediction_id"):
        return [str(document["prediction_id"])]
    return []


def _event_info(event: Any) -> tuple[str, dict[str, Any]]:
    """(trigger, details) of a handler event."""
    if not isinstance(event, dict):
        return "other", {}
    if "httpMethod" in event:
        return "api", {"method": event.get("httpMethod"), "path": event.get("path")}
    if "action" in event:
        return "stepfunctions", {
            "action": event.get("action"),
            "step": event.get("step"),
            "parent": event.get("ensemble_prediction_id"),
            "token": event.get("task_token"),
            "service": event.get("service"),
        }
    if event.get("detail-type") == "Scheduled Event":
        return "schedule", {}
    records = event.get("Records") or []
    if records and "Sns" in records[0]:
        ids = []
        for record in records:
            message = _json(record["Sns"].get("Message"))
            if isinstance(message, dict) and message.get("inferenceId"):
                ids.append(message["inferenceId"])
        return "sns", {"prediction_ids": ids}
    if records and "body" in records[0]:
        ids = []
        for record in records:
            ids.extend(_ids_in_body(record.get("body", "")))
        return "sqs", {"prediction_ids": ids, "queue": str(records[0].get("eventSourceARN", "")).rsplit(":", 1)[-1]}
    return "other", {}


class Recorder:
    """Records calls and invocations of one running ``LocalRuntime`` (see the module docstring)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.calls: list[Call] = []
        self.invocations: list[Invocation] = []
        self.capacity = DynamoCapacity()
        self._lock = threading.Lock()
        self._next_id = 0
        self._original_call: Any = None
        self._installed = False
        self._sagemaker_jobs: dict[str, str] = {}  # worker thread -> inference it is working on

    # -- installation -------------------------------------------------------------------------
    def install(self) -> Recorder:
        import botocore.client

        if self._installed:
            return self
        assert self.runtime.registry is not None and self.runtime.stack is not None
        outputs = self.runtime.stack.outputs
        with untraced():
            tables = [outputs[k] for k in ("PredictionsTableName", "ServicesTableName", "ClientsTableName")]
            self.capacity.load_schemas(self.runtime.client("dynamodb"), tables)
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            return recorder._call(original, client, operation_name, api_params)

        self._original_call = original
        botocore.client.BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
        registry = self.runtime.registry
        original_handler = registry.handler

        def handler(spec: Any) -> Any:
            return recorder._wrap(spec, original_handler(spec))

        registry.handler = handler
        self._installed = True
        return self

    def uninstall(self) -> None:
        import botocore.client

        if not self._installed:
            return
        botocore.client.BaseClient._make_api_call = self._original_call  # type: ignore[method-assign]
        registry = self.runtime.registry
        if registry is not None and "handler" in vars(registry):
            del registry.handler
        self._installed = False

    def __enter__(self) -> Recorder:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- recording ----------------------------------------------------------------------------
    def _wrap(self, spec: Any, function: Any) -> Any:
        recorder = self
        name = short_name(spec.handler)

        def traced(event: Any, context: Any) -> Any:
            trigger, info = _event_info(event)
            with recorder._lock:
                recorder._next_id += 1
                invocation = Invocation(
                    id=recorder._next_id,
                    function=name,
                    t0=time.time(),
                    t1=0.0,
                    thread=threading.current_thread().name,
                    trigger=trigger,
                    info=info,
                )
            previous = getattr(_local, "invocation", None)
            _local.invocation = invocation
            try:
                return function(event, context)
            except BaseException as error:
                invocation.error = type(error).__name__
                raise
            finally:
                _local.invocation = previous
                invocation.t1 = time.time()
                with recorder._lock:
                    recorder.invocations.append(invocation)

        return traced

    def _call(self, original: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        if getattr(_local, "tag", None) == "bench":
            return original(client, operation, params)
        invocation: Invocation | None = getattr(_local, "invocation", None)
        t0 = time.time()
        response: Any = None
        error: str | None = None
        try:
            response = original(client, operation, params)
            return response
        except Exception as failure:
            code = (
                getattr(failure, "response", {}).get("Error", {}).get("Code") if hasattr(failure, "response") else None
            )
            error = str(code or type(failure).__name__)
            raise
        finally:
            t1 = time.time()
            with contextlib.suppress(Exception):  # the recorder must never break the runtime
                self._record(client, operation, params, response, error, t0, t1, invocation)

    def _record(
        self,
        client: Any,
        operation: str,
        params: dict[str, Any],
        response: Any,
        error: str | None,
        t0: float,
        t1: float,
        invocation: Invocation | None,
    ) -> None:
        service = client.meta.service_model.service_name
        thread = threading.current_thread().name
        if invocation is not None:
            source = "function"
        elif thread.startswith("poller-"):
            source = "event-source"
        elif thread.startswith("sagemaker-"):
            source = "sagemaker"
        elif service == "lambda" and operation == "Invoke":
            source = "stepfunctions"
        else:
            source = "other"
        info = _call_info(service, operation, params, response)
        if source == "sagemaker":
            # A worker reads the input, runs the model, writes the output (a UUID key) and publishes:
            # its calls belong to the inference whose input it read last.
            if operation == "GetObject" and info.get("prediction_id"):
                self._sagemaker_jobs[thread] = info["prediction_id"]
            elif operation != "Publish" and thread in self._sagemaker_jobs:
                info["prediction_id"] = self._sagemaker_jobs[thread]
        if service == "dynamodb":
            info.update(self.capacity.account(operation, params, response, error))
        call = Call(service, operation, t0, t1, thread, source, invocation.id if invocation else None, info, error)
        with self._lock:
            self.calls.append(call)
            if invocation is not None:
                invocation.calls.append(call)

    # -- windows --------------------------------------------------------------------------------
    def mark(self) -> tuple[int, int]:
        with self._lock:
            return len(self.calls), len(self.invocations)

    def since(self, mark: tuple[int, int]) -> tuple[list[Call], list[Invocation]]:
        with self._lock:
            return list(self.calls[mark[0] :]), list(self.invocations[mark[1] :])
