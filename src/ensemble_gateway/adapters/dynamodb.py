"""DynamoDB adapters: the predictions table, the service catalog and the client directory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

# Re-exported: the hash is the domain's (domain/auth.py); callers once imported it from here.
from ..domain.auth import hash_api_key as hash_api_key
from ..domain.models import (
    Batch,
    BatchOutcome,
    BatchStatus,
    Client,
    LineRange,
    Prediction,
    PredictionStatus,
    Service,
    ShadowOutcome,
    StepOutcome,
    utcnow,
)
from ..domain.ports import PageCursor, PredictionPage, PredictionQuery
from .aws import LazyClient, error_code


def _to_item(value: Any) -> Any:
    """Plain JSON-ready data → DynamoDB-ready data (no None, no floats)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, datetime):
        # Fixed width: stored datetimes are compared as strings (indexes, conditions).
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dict):
        return {k: _to_item(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_item(v) for v in value]
    if isinstance(value, float):
        return Decimal(str(value))
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    return value


def _from_item(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_item(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_item(v) for v in value]
    return value


# Listing an owner's predictions: index entries read per Query, and Queries per page at most (the
# filter drops steps, other statuses and services after DynamoDB's Limit).
LIST_PAGE_ITEMS = 100
LIST_MAX_PAGES = 10


class DynamoTable(LazyClient):
    """A table through the low-level client with the type (de)serialisers."""

    service_name = "dynamodb"

    def __init__(self, table_name: str, client: Any = None) -> None:
        super().__init__(client)
        self.table_name = table_name
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    def serialize(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(v) for k, v in _to_item(dict(item)).items()}

    def deserialize(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return _from_item({k: self._deserializer.deserialize(v) for k, v in item.items()})

    def value(self, value: Any) -> dict[str, Any]:
        serialized: dict[str, Any] = self._serializer.serialize(_to_item(value))  # type: ignore[assignment]
        return serialized

    def get_item(self, key: Mapping[str, Any], consistent: bool = True) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table_name, Key=self.serialize(key), ConsistentRead=consistent)
        item = response.get("Item")
        return self.deserialize(item) if item else None


class DynamoPredictionStore:
    """Predictions, keyed by ``prediction_id``; idempotency keys are items of the same table."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = DynamoTable(table_name, client)

    # -- reading --------------------------------------------------------------------------
    def get(self, prediction_id: str) -> Prediction | None:
        item = self.table.get_item({"prediction_id": prediction_id})
        if item is None or item.get("record_type") != "prediction":
            return None
        return _prediction(item)

    def find_by_idempotency_key(self, owner: str, key: str) -> Prediction | None:
        item = self.table.get_item({"prediction_id": _idempotency_item_id(owner, key)})
        # A key is remembered for 24 h; TTL deletes the marker lazily (hours or days later).
        if item is None or int(item.get("expires_at", 0)) <= int(utcnow().timestamp()):
            return None
        return self.get(item["target"])

    def children(self, parent_id: str) -> list[Prediction]:
        items: list[Prediction] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table.table_name,
            "IndexName": "by-parent",
            "KeyConditionExpression": "parent_id = :p",
            "ExpressionAttributeValues": {":p": {"S": parent_id}},
        }
        while True:
            response = self.table.client.query(**kwargs)
            for raw in response.get("Items", []):
                # The index projects keys only: read each child in full, consistently.
                child = self.get(self.table.deserialize(raw)["prediction_id"])
                if child is not None:
                    items.append(child)
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def overdue(self, status: PredictionStatus, now: datetime, limit: int) -> list[Prediction]:
        response = self.table.client.query(
            TableName=self.table.table_name,
            IndexName="by-status-deadline",
            KeyConditionExpression="#s = :s AND deadline_at < :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status.value}, ":now": self.table.value(now)},
            Limit=limit,
        )
        found = []
        for raw in response.get("Items", []):
            prediction = self.get(self.table.deserialize(raw)["prediction_id"])
            if prediction is not None and prediction.status is status:
                found.append(prediction)
        return found

    def audit_pending(self, status: PredictionStatus, before: datetime, limit: int) -> list[Prediction]:
        """The audit outbox's backlog from the sparse ``by-audit-pending`` index (hash
        ``audit_pending``, the terminal status; range ``finished_at``): only marked records are in
        it, so the sweep reads nothing else."""
        response = self.table.client.query(
            TableName=self.table.table_name,
            IndexName="by-audit-pending",
            KeyConditionExpression="audit_pending = :s AND finished_at < :before",
            ExpressionAttributeValues={":s": {"S": status.value}, ":before": self.table.value(before)},
            Limit=limit,
        )
        found = []
        for raw in response.get("Items", []):
            prediction = self.get(self.table.deserialize(raw)["prediction_id"])
            if prediction is not None and prediction.audit_pending == status.value:
                found.append(prediction)
        return found

    def list_owned(self, query: PredictionQuery) -> PredictionPage:
        """One page of an owner's top-level predictions, newest first, from the ``by-owner`` index.

        The index (hash ``owner``, range ``created_at``) holds every record with an owner, steps
        too, and projects only what the filter reads (``status``, ``service``, ``parent_id``,
        ``expires_at``): a status change writes the index, nothing else of the record's many
        updates does. So the index is read for the page's keys, and the records themselves
        with one consistent ``BatchGetItem``.

        DynamoDB applies ``Limit`` before the filter: the index is read in pages of
        ``LIST_PAGE_ITEMS`` entries until ``query.limit`` records match, the index ends, or
        ``LIST_MAX_PAGES`` pages were read (the page is then short, or empty, with a cursor).
        A record whose status changed since the index saw it (the index is eventually
        consistent) and no longer matches is left out.
        """
        table = self.table
        condition = "#o = :o"
        values: dict[str, Any] = {":o": {"S": query.owner}, ":now": {"N": str(int(query.now.timestamp()))}}
        names = {"#o": "owner", "#p": "parent_id", "#e": "expires_at"}
        if query.created_after is not None:
            condition += " AND #c > :after"
            names["#c"] = "created_at"
            values[":after"] = table.value(query.created_after)
        filters = ["attribute_not_exists(#p)", "(attribute_not_exists(#e) OR #e >= :now)"]
        if query.status is not None:
            filters.append("#s = :s")
            names["#s"] = "status"
            values[":s"] = {"S": query.status.value}
        if query.service is not None:
            filters.append("#v = :v")
            names["#v"] = "service"
            values[":v"] = {"S": query.service}
        request: dict[str, Any] = {
            "TableName": table.table_name,
            "IndexName": "by-owner",
            "KeyConditionExpression": condition,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": LIST_PAGE_ITEMS,
        }
        if query.after is not None:
            request["ExclusiveStartKey"] = {
                "owner": {"S": query.owner},
                "created_at": table.value(query.after.created_at),
                "prediction_id": {"S": query.after.prediction_id},
            }
        keys: list[dict[str, Any]] = []
        cursor: PageCursor | None = None
        for _ in range(LIST_MAX_PAGES):
            response = table.client.query(**request)
            items = response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            taken = items[: query.limit - len(keys)]
            keys += taken
            if len(keys) == query.limit:
                # Full: more may follow the page's last record, in this response or after it.
                more = len(taken) < len(items) or last is not None
                cursor = _cursor(table.deserialize(taken[-1])) if more else None
                break
            if last is None:
                cursor = None
                break
            request["ExclusiveStartKey"] = last
            # Out of budget after this read: the caller goes on from the last entry read.
            cursor = _cursor(table.deserialize(last))
        records = self._get_many([table.deserialize(raw)["prediction_id"] for raw in keys])
        page = [prediction for prediction in records if query.status is None or prediction.status is query.status]
        return PredictionPage(page, cursor)

    def scan_service(
        self, service: str, *, since: datetime | None = None, limit: int = 1000, shadows: bool = False
    ) -> list[Prediction]:
        """The records of ``service`` (top-level predictions and ensemble steps), oldest first.

        An operator's scan (``services compare``), never a request path: the table has no index
        by service, so this is a paginated Scan with a FilterExpression. DynamoDB bills every
        item the Scan reads, not only those that match (eventually consistent reads: half a
        read unit per 4 KB), so the cost grows with the whole table; ``since`` narrows what is
        returned, not what is read. The scan stops as soon as ``limit`` records matched, so
        ``limit`` bounds the cost too, but a Scan reads in table order, not by time: with a
        limit, the records are *some* of the service's, not the newest (give ``since``).

        Parameters
        ----------
        service
            The service name the records carry.
        since
            Only records created at or after it.
        limit
            At most this many records.
        shadows
            Include the copies sent to shadow versions (their outcomes are also on the records
            they shadowed, ``shadow_outcomes``).
        """
        table = self.table
        filters = ["record_type = :prediction", "#s = :s"]
        names = {"#s": "service"}
        values: dict[str, Any] = {":prediction": {"S": "prediction"}, ":s": {"S": service}}
        if since is not None:
            filters.append("#c >= :since")
            names["#c"] = "created_at"
            values[":since"] = table.value(since)
        if not shadows:
            filters.append("(attribute_not_exists(#cb.#k) OR #cb.#k <> :shadow)")
            names.update({"#cb": "callback", "#k": "kind"})
            values[":shadow"] = {"S": "shadow"}
        request: dict[str, Any] = {
            "TableName": table.table_name,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        found: list[Prediction] = []
        while len(found) < limit:
            response = table.client.scan(**request)
            found += [_prediction(table.deserialize(raw)) for raw in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(found[:limit], key=lambda p: (p.created_at, p.prediction_id))

    def _get_many(self, prediction_ids: list[str]) -> list[Prediction]:
        """The records of ``prediction_ids`` (at most 100), in that order, read consistently."""
        if not prediction_ids:
            return []
        table = self.table
        found: dict[str, Prediction] = {}
        request: dict[str, Any] = {
            table.table_name: {
                "Keys": [{"prediction_id": {"S": prediction_id}} for prediction_id in prediction_ids],
                "ConsistentRead": True,
            }
        }
        while request:
            response = table.client.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(table.table_name, []):
                item = table.deserialize(raw)
                if item.get("record_type") == "prediction":
                    found[item["prediction_id"]] = _prediction(item)
            # Throttled or over 16 MB: DynamoDB hands back what it did not read.
            request = response.get("UnprocessedKeys") or {}
        return [found[prediction_id] for prediction_id in prediction_ids if prediction_id in found]

    # -- writing --------------------------------------------------------------------------
    def create(self, prediction: Prediction, *, claim_dispatch_until: datetime | None = None) -> bool:
        item: dict[str, Any] = {
            "record_type": "prediction",
            **prediction.model_dump(exclude={"step_outputs", "shadow_outcomes"}),
            **{_outcome_attribute(k): v.model_dump_json() for k, v in prediction.step_outputs.items()},
            **{_shadow_attribute(k): v.model_dump_json() for k, v in prediction.shadow_outcomes.items()},
        }
        if claim_dispatch_until is not None:
            item["dispatch_lease_until"] = claim_dispatch_until
        put = {
            "TableName": self.table.table_name,
            "Item": self.table.serialize(item),
            "ConditionExpression": "attribute_not_exists(prediction_id)",
        }
        client = self.table.client
        try:
            if prediction.idempotency_key:
                now = utcnow()
                marker = {
                    "prediction_id": _idempotency_item_id(prediction.owner, prediction.idempotency_key),
                    "record_type": "idempotency",
                    "target": prediction.prediction_id,
                    "expires_at": int((now + timedelta(hours=24)).timestamp()),
                }
                client.transact_write_items(
                    TransactItems=[
                        {"Put": put},
                        {
                            "Put": {
                                "TableName": self.table.table_name,
                                "Item": self.table.serialize(marker),
                                # A marker past its 24 h that TTL has not deleted yet is free.
                                "ConditionExpression": "attribute_not_exists(prediction_id) OR expires_at <= :now",
                                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                            }
                        },
                    ]
                )
            else:
                client.put_item(**put)
        except Exception as error:
            if error_code(error) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return False
            raise
        return True

    def _update(
        self,
        prediction_id: str,
        changes: Mapping[str, Any],
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets = []
        # updated_at is public (GET /predictions/{id}): it moves when the document changes, not when
        # the gateway takes or releases its own leases.
        if any(not _is_bookkeeping(field) for field in changes):
            changes = {**changes, "updated_at": utcnow()}
        for index, (field, value) in enumerate(changes.items()):
            names[f"#f{index}"] = field
            if value is None:
                continue
            values[f":v{index}"] = self.table.value(value)
            sets.append(f"#f{index} = :v{index}")
        removes = [f"#f{i}" for i, value in enumerate(changes.values()) if value is None]
        clauses = [f"SET {', '.join(sets)}"] if sets else []
        if removes:
            clauses.append(f"REMOVE {', '.join(removes)}")
        expression = " ".join(clauses)
        kwargs: dict[str, Any] = {
            "TableName": self.table.table_name,
            "Key": self.table.serialize({"prediction_id": prediction_id}),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
        }
        base_condition = "attribute_exists(prediction_id)"
        kwargs["ConditionExpression"] = f"{base_condition} AND ({condition})" if condition else base_condition
        for name, value in (condition_values or {}).items():
            values[name] = self.table.value(value)
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if condition and "#status" in condition:
            names["#status"] = "status"
        try:
            response = self.table.client.update_item(**kwargs)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return self.table.deserialize(response["Attributes"])

    def transition(
        self,
        prediction_id: str,
        from_statuses: Iterable[PredictionStatus],
        to_status: PredictionStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Prediction | None:
        allowed = list(from_statuses)
        placeholders = ", ".join(f":from{i}" for i in range(len(allowed)))
        item = self._update(
            prediction_id,
            {**(changes or {}), "status": to_status.value},
            condition=f"#status IN ({placeholders})",
            condition_values={f":from{i}": status.value for i, status in enumerate(allowed)},
        )
        return _prediction(item) if item else None

    def claim_dispatch(self, prediction_id: str, now: datetime, lease_seconds: int) -> Prediction | None:
        item = self._update(
            prediction_id,
            {"dispatch_lease_until": now + timedelta(seconds=lease_seconds)},
            condition="#status = :running AND attribute_not_exists(dispatched_at) AND "
            "(attribute_not_exists(dispatch_lease_until) OR dispatch_lease_until < :now)",
            condition_values={":running": PredictionStatus.RUNNING.value, ":now": now},
        )
        return _prediction(item) if item else None

    def update(self, prediction_id: str, changes: Mapping[str, Any]) -> None:
        self._update(prediction_id, changes)

    def append_webhook_attempt(self, prediction_id: str, attempt: Mapping[str, Any]) -> None:
        self.table.client.update_item(
            TableName=self.table.table_name,
            Key=self.table.serialize({"prediction_id": prediction_id}),
            UpdateExpression="SET webhook_attempts = list_append(if_not_exists(webhook_attempts, :e), :a)",
            ExpressionAttributeValues={":a": self.table.value([dict(attempt)]), ":e": {"L": []}},
        )

    def claim_webhook(self, prediction_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        lease = _webhook_lease(event_type)
        item = self._update(
            prediction_id,
            {lease: now + timedelta(seconds=lease_seconds)},
            condition=f"attribute_not_exists({lease}) OR {lease} < :now",
            condition_values={":now": now},
        )
        return item is not None

    def release_webhook(self, prediction_id: str, event_type: str) -> None:
        self._update(prediction_id, {_webhook_lease(event_type): None})

    def record_step_outcome(self, parent_id: str, child_id: str, outcome: StepOutcome) -> Prediction | None:
        # One attribute per child (not a map attribute: setting a key of a map that does not exist
        # yet fails), as JSON text (DynamoDB would drop nulls and reject empty keys in a value).
        # Bookkeeping: the ensemble's public updated_at does not move.
        kwargs: dict[str, Any] = {
            "TableName": self.table.table_name,
            "Key": self.table.serialize({"prediction_id": parent_id}),
            "UpdateExpression": "SET #o = :o",
            "ConditionExpression": "attribute_exists(prediction_id)",
            "ExpressionAttributeNames": {"#o": _outcome_attribute(child_id)},
            "ExpressionAttributeValues": {":o": {"S": outcome.model_dump_json()}},
            "ReturnValues": "ALL_NEW",
        }
        try:
            try:
                response = self.table.client.update_item(**kwargs)
            except Exception as error:
                if error_code(error) != "ValidationException" or not outcome.inline:
                    raise
                # The record would pass DynamoDB's 400 KB: keep the reference, drop the inline copy.
                slim = outcome.model_copy(update={"output": None, "inline": False})
                kwargs["ExpressionAttributeValues"] = {":o": {"S": slim.model_dump_json()}}
                response = self.table.client.update_item(**kwargs)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return _prediction(self.table.deserialize(response["Attributes"]))

    def record_shadow_outcome(self, primary_id: str, shadow_id: str, outcome: ShadowOutcome) -> bool:
        # As a step's outcome: one attribute per shadow (a map entry cannot be set in a map that a
        # record created before shadows existed lacks), JSON text, bookkeeping (updated_at stays).
        kwargs: dict[str, Any] = {
            "TableName": self.table.table_name,
            "Key": self.table.serialize({"prediction_id": primary_id}),
            "UpdateExpression": "SET #o = :o",
            "ConditionExpression": "attribute_exists(prediction_id)",
            "ExpressionAttributeNames": {"#o": _shadow_attribute(shadow_id)},
            "ExpressionAttributeValues": {":o": {"S": outcome.model_dump_json()}},
        }
        try:
            try:
                self.table.client.update_item(**kwargs)
            except Exception as error:
                if error_code(error) != "ValidationException" or not outcome.inline:
                    raise
                # The record would pass DynamoDB's 400 KB: keep the reference, drop the inline copy.
                slim = outcome.model_copy(update={"output": None, "inline": False})
                kwargs["ExpressionAttributeValues"] = {":o": {"S": slim.model_dump_json()}}
                self.table.client.update_item(**kwargs)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _is_bookkeeping(field: str) -> bool:
    """Fields of the gateway's own coordination, invisible in the public document."""
    # shadow_versions: lineage, as step outcomes are; it does not move updated_at either.
    # audit_pending: the audit outbox, the gateway's own as the leases are.
    return field in _BOOKKEEPING or field.startswith("webhook_lease_")


_BOOKKEEPING = frozenset({"dispatch_lease_until", "dispatched_at", "shadow_versions", "audit_pending"})


def _webhook_lease(event_type: str) -> str:
    return "webhook_lease_" + event_type.replace(".", "_")


_OUTCOME_PREFIX = "step_outcome#"


def _outcome_attribute(child_id: str) -> str:
    return _OUTCOME_PREFIX + child_id


_SHADOW_PREFIX = "shadow_outcome#"


def _shadow_attribute(shadow_id: str) -> str:
    return _SHADOW_PREFIX + shadow_id


def _prediction(item: Mapping[str, Any]) -> Prediction:
    fields = {k: v for k, v in item.items() if k in Prediction.model_fields}
    outcomes = {k[len(_OUTCOME_PREFIX) :]: v for k, v in item.items() if k.startswith(_OUTCOME_PREFIX)}
    if outcomes:
        fields["step_outputs"] = {k: StepOutcome.model_validate_json(v) for k, v in outcomes.items()}
    shadows = {k[len(_SHADOW_PREFIX) :]: v for k, v in item.items() if k.startswith(_SHADOW_PREFIX)}
    if shadows:
        fields["shadow_outcomes"] = {k: ShadowOutcome.model_validate_json(v) for k, v in shadows.items()}
    return Prediction.model_validate(fields)


def _cursor(key: Mapping[str, Any]) -> PageCursor:
    """The position of an index entry (or of a LastEvaluatedKey) in an owner's list."""
    return PageCursor(created_at=datetime.fromisoformat(key["created_at"]), prediction_id=key["prediction_id"])


def _idempotency_item_id(owner: str, key: str) -> str:
    return "idem#" + hashlib.sha256(f"{owner}\x00{key}".encode()).hexdigest()


class DynamoServiceCatalog:
    """The service catalog: one item per service, its definition as a JSON document."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = DynamoTable(table_name, client)

    def get(self, name: str) -> Service | None:
        item = self.table.get_item({"name": name}, consistent=True)
        return Service.model_validate_json(item["document"]) if item else None

    def get_many(self, names: Iterable[str]) -> dict[str, Service]:
        wanted = list(dict.fromkeys(names))
        found: dict[str, Service] = {}
        for start in range(0, len(wanted), 100):  # BatchGetItem takes at most 100 keys
            request: dict[str, Any] = {
                self.table.table_name: {
                    "Keys": [self.table.serialize({"name": name}) for name in wanted[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.table.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.table.table_name, []):
                    service = Service.model_validate_json(self.table.deserialize(raw)["document"])
                    found[service.name] = service
                request = response.get("UnprocessedKeys") or {}
        return found

    def list(self, active_only: bool = True) -> list[Service]:
        services: list[Service] = []
        kwargs: dict[str, Any] = {"TableName": self.table.table_name, "ConsistentRead": True}
        while True:
            response = self.table.client.scan(**kwargs)
            for raw in response.get("Items", []):
                service = Service.model_validate_json(self.table.deserialize(raw)["document"])
                if service.active or not active_only:
                    services.append(service)
            if "LastEvaluatedKey" not in response:
                return sorted(services, key=lambda s: s.name)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put(self, service: Service) -> None:
        self.table.client.put_item(
            TableName=self.table.table_name,
            Item=self.table.serialize(
                {
                    "name": service.name,
                    "kind": service.kind,
                    "active": service.active,
                    "document": service.model_dump_json(exclude_none=True),
                }
            ),
        )

    def put_if_unchanged(self, service: Service, expected: Service | None) -> bool:
        """Put ``service`` only if the stored entry is still ``expected`` (None: there is none).

        An operator's read-modify-write (``services approve``, ``traffic``...): False, and nothing
        written, when someone changed the entry since it was read as ``expected``. The stored
        document is read and compared as a Service (a document written by an older version of
        the gateway may serialise differently), then the put is conditional on that exact
        document text, so a write between the two is caught too.
        """
        item = self.table.get_item({"name": service.name}, consistent=True)
        current = Service.model_validate_json(item["document"]) if item else None
        if current != expected:
            return False
        request: dict[str, Any] = {
            "TableName": self.table.table_name,
            "Item": self.table.serialize(
                {
                    "name": service.name,
                    "kind": service.kind,
                    "active": service.active,
                    "document": service.model_dump_json(exclude_none=True),
                }
            ),
        }
        if item is None:
            request["ConditionExpression"] = "attribute_not_exists(#n)"
            request["ExpressionAttributeNames"] = {"#n": "name"}
        else:
            request["ConditionExpression"] = "#d = :d"
            request["ExpressionAttributeNames"] = {"#d": "document"}
            request["ExpressionAttributeValues"] = {":d": {"S": item["document"]}}
        try:
            self.table.client.put_item(**request)
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, name: str) -> None:
        """Remove an entry (``services delete``; a missing entry is not an error)."""
        self.table.client.delete_item(TableName=self.table.table_name, Key=self.table.serialize({"name": name}))


class DynamoClientDirectory:
    """Clients by ID, with alias items for API-key hashes and IAM principals."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = DynamoTable(table_name, client)

    def get(self, client_id: str) -> Client | None:
        item = self.table.get_item({"client_id": client_id})
        if item is None or "document" not in item or "target" in item:
            return None  # (an alias item is no client)
        return Client.model_validate_json(item["document"])

    def _by_alias(self, alias: str) -> Client | None:
        """One read: an alias item carries a copy of its client's document (written by ``put``
        with it), so that every API request authenticates with one GetItem, not two. An alias
        written before it carried the copy is followed to its client."""
        item = self.table.get_item({"client_id": alias})
        if item is None:
            return None
        if "document" in item:
            found = Client.model_validate_json(item["document"])
            if found.client_id == item["target"]:
                return found
        return self.get(item["target"])

    def by_api_key_hash(self, api_key_hash: str) -> Client | None:
        return self._by_alias(f"apikey#{api_key_hash}")

    def by_principal(self, principal_arn: str) -> Client | None:
        return self._by_alias(f"principal#{principal_arn}")

    def put(self, client: Client) -> None:
        previous = self.get(client.client_id)
        document = client.model_dump_json()
        items = [{"client_id": client.client_id, "document": document}]
        if client.api_key_hash:
            items.append(
                {"client_id": f"apikey#{client.api_key_hash}", "target": client.client_id, "document": document}
            )
        if client.principal_arn:
            items.append(
                {"client_id": f"principal#{client.principal_arn}", "target": client.client_id, "document": document}
            )
        for item in items:
            self.table.client.put_item(TableName=self.table.table_name, Item=self.table.serialize(item))
        # A replaced API key or principal must stop finding the client: its alias goes (if it
        # still points at this client).
        stale = []
        if previous is not None and previous.api_key_hash and previous.api_key_hash != client.api_key_hash:
            stale.append(f"apikey#{previous.api_key_hash}")
        if previous is not None and previous.principal_arn and previous.principal_arn != client.principal_arn:
            stale.append(f"principal#{previous.principal_arn}")
        for alias in stale:
            try:
                self.table.client.delete_item(
                    TableName=self.table.table_name,
                    Key=self.table.serialize({"client_id": alias}),
                    ConditionExpression="target = :c",
                    ExpressionAttributeValues={":c": {"S": client.client_id}},
                )
            except Exception as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise


def dumps(value: Any) -> str:
    return json.dumps(_to_item(value), default=str)


#: The sort key of a batch's own record, and the prefix of its items' outcomes (``line#000001``).
BATCH_ENTRY = "batch"
_LINE_PREFIX = "line#"
_BATCH_COUNTERS = {
    PredictionStatus.COMPLETED: "completed",
    PredictionStatus.FAILED: "failed",
    PredictionStatus.EXPIRED: "failed",
    PredictionStatus.CANCELLED: "cancelled",
    PredictionStatus.SKIPPED: "cancelled",
}
# A batch is looked at again by the sweeper this long after its last progress.
_BATCH_STALL_SECONDS = 120


class DynamoBatchStore:
    """Batches (hash ``batch_id``, range ``entry``): the batch's record (``entry`` = ``batch``)
    and one entry per item outcome (``line#000001``...: a Query reads them in line order), plus
    idempotency markers (``idem#...``). The index ``by-status-due`` (status, due_at) is the
    sweeper's work list; only batch records carry those attributes."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = DynamoTable(table_name, client)

    def _key(self, batch_id: str, entry: str = BATCH_ENTRY) -> dict[str, Any]:
        return self.table.serialize({"batch_id": batch_id, "entry": entry})

    def create(self, batch: Batch) -> bool:
        item = {"entry": BATCH_ENTRY, **batch.model_dump()}
        put = {
            "TableName": self.table.table_name,
            "Item": self.table.serialize(item),
            "ConditionExpression": "attribute_not_exists(batch_id)",
        }
        client = self.table.client
        try:
            if batch.idempotency_key:
                now = utcnow()
                marker = {
                    "batch_id": _idempotency_item_id(batch.owner, batch.idempotency_key),
                    "entry": "idem",
                    "target": batch.batch_id,
                    "expires_at": int((now + timedelta(hours=24)).timestamp()),
                }
                client.transact_write_items(
                    TransactItems=[
                        {"Put": put},
                        {
                            "Put": {
                                "TableName": self.table.table_name,
                                "Item": self.table.serialize(marker),
                                "ConditionExpression": "attribute_not_exists(batch_id) OR expires_at <= :now",
                                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                            }
                        },
                    ]
                )
            else:
                client.put_item(**put)
        except Exception as error:
            if error_code(error) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return False
            raise
        return True

    def get(self, batch_id: str) -> Batch | None:
        item = self.table.get_item({"batch_id": batch_id, "entry": BATCH_ENTRY})
        return _batch(item) if item else None

    def find_by_idempotency_key(self, owner: str, key: str) -> Batch | None:
        item = self.table.get_item({"batch_id": _idempotency_item_id(owner, key), "entry": "idem"})
        if item is None or int(item.get("expires_at", 0)) <= int(utcnow().timestamp()):
            return None
        return self.get(item["target"])

    def _update(
        self,
        batch_id: str,
        changes: Mapping[str, Any],
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
    ) -> Batch | None:
        names: dict[str, str] = {"#updated": "updated_at"}
        values: dict[str, Any] = {":updated": self.table.value(utcnow())}
        sets = ["#updated = :updated"]
        removes = []
        for index, (field, value) in enumerate(changes.items()):
            names[f"#f{index}"] = field
            if value is None:
                removes.append(f"#f{index}")
            else:
                values[f":v{index}"] = self.table.value(value)
                sets.append(f"#f{index} = :v{index}")
        expression = f"SET {', '.join(sets)}" + (f" REMOVE {', '.join(removes)}" if removes else "")
        if condition and "#status" in condition:
            names["#status"] = "status"
        for name, value in (condition_values or {}).items():
            values[name] = self.table.value(value)
        base = "attribute_exists(batch_id)"
        try:
            response = self.table.client.update_item(
                TableName=self.table.table_name,
                Key=self._key(batch_id),
                UpdateExpression=expression,
                ConditionExpression=f"{base} AND ({condition})" if condition else base,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return _batch(self.table.deserialize(response["Attributes"]))

    def transition(
        self,
        batch_id: str,
        from_statuses: Iterable[BatchStatus],
        to_status: BatchStatus,
        changes: Mapping[str, Any] | None = None,
    ) -> Batch | None:
        allowed = list(from_statuses)
        placeholders = ", ".join(f":from{i}" for i in range(len(allowed)))
        return self._update(
            batch_id,
            {**(changes or {}), "status": to_status.value},
            condition=f"#status IN ({placeholders})",
            condition_values={f":from{i}": status.value for i, status in enumerate(allowed)},
        )

    def update(self, batch_id: str, changes: Mapping[str, Any]) -> None:
        self._update(batch_id, changes)

    def take_lines(self, batch_id: str, expected_next_line: int, taken: LineRange, next_offset: int) -> Batch | None:
        return self._update(
            batch_id,
            {
                "next_line": expected_next_line + taken.count,
                "next_offset": next_offset,
                "pending_range": taken,
                "due_at": utcnow() + timedelta(seconds=_BATCH_STALL_SECONDS),
            },
            # The cursor moves from the value the tick read, and one range is pending at a time.
            condition="#status = :running AND next_line = :expected AND attribute_not_exists(pending_range)",
            condition_values={":running": BatchStatus.RUNNING.value, ":expected": expected_next_line},
        )

    def release_lines(self, batch_id: str, first_line: int) -> None:
        try:
            self.table.client.update_item(
                TableName=self.table.table_name,
                Key=self._key(batch_id),
                UpdateExpression="REMOVE pending_range",
                ConditionExpression="pending_range.first_line = :f",
                ExpressionAttributeValues={":f": {"N": str(first_line)}},
            )
        except Exception as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def record_outcome(self, batch_id: str, outcome: BatchOutcome, now: datetime) -> bool:
        batch = self.table.get_item({"batch_id": batch_id, "entry": BATCH_ENTRY})
        if batch is None:
            return False
        counter = _BATCH_COUNTERS[outcome.status]
        entry = {
            "batch_id": batch_id,
            "entry": f"{_LINE_PREFIX}{outcome.line:06d}",
            "document": outcome.model_dump_json(),
            "expires_at": batch.get("expires_at"),
        }
        try:
            try:
                self._record(batch_id, entry, counter, now)
            except Exception as error:
                if error_code(error) != "ValidationException" or not outcome.inline:
                    raise
                # Over DynamoDB's 400 KB: keep the reference, the result line gets a URL instead.
                slim = outcome.model_copy(update={"output": None, "inline": False})
                self._record(batch_id, {**entry, "document": slim.model_dump_json()}, counter, now)
        except Exception as error:
            if error_code(error) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return False
            raise
        return True

    def _record(self, batch_id: str, entry: Mapping[str, Any], counter: str, now: datetime) -> None:
        # The outcome and its count in one transaction: an item is counted once, or not at all.
        self.table.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table.table_name,
                        "Item": self.table.serialize(entry),
                        "ConditionExpression": "attribute_not_exists(batch_id)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table.table_name,
                        "Key": self._key(batch_id),
                        "UpdateExpression": "ADD #c :one SET due_at = :due, updated_at = :now",
                        "ConditionExpression": "attribute_exists(batch_id)",
                        "ExpressionAttributeNames": {"#c": counter},
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":due": self.table.value(now + timedelta(seconds=_BATCH_STALL_SECONDS)),
                            ":now": self.table.value(now),
                        },
                    }
                },
            ]
        )

    def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        found: list[BatchOutcome] = []
        request: dict[str, Any] = {
            "TableName": self.table.table_name,
            "KeyConditionExpression": "batch_id = :b AND begins_with(#e, :p)",
            "ExpressionAttributeNames": {"#e": "entry"},
            "ExpressionAttributeValues": {":b": {"S": batch_id}, ":p": {"S": _LINE_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            response = self.table.client.query(**request)
            found += [
                BatchOutcome.model_validate_json(self.table.deserialize(raw)["document"])
                for raw in response.get("Items", [])
            ]
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def due(self, status: BatchStatus, now: datetime, limit: int) -> list[Batch]:
        response = self.table.client.query(
            TableName=self.table.table_name,
            IndexName="by-status-due",
            KeyConditionExpression="#s = :s AND due_at < :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status.value}, ":now": self.table.value(now)},
            Limit=limit,
        )
        found = []
        for raw in response.get("Items", []):
            batch = self.get(self.table.deserialize(raw)["batch_id"])
            if batch is not None and batch.status is status:
                found.append(batch)
        return found

    def append_webhook_attempt(self, batch_id: str, attempt: Mapping[str, Any]) -> None:
        self.table.client.update_item(
            TableName=self.table.table_name,
            Key=self._key(batch_id),
            UpdateExpression="SET webhook_attempts = list_append(if_not_exists(webhook_attempts, :e), :a)",
            ExpressionAttributeValues={":a": self.table.value([dict(attempt)]), ":e": {"L": []}},
        )

    def claim_webhook(self, batch_id: str, event_type: str, now: datetime, lease_seconds: int) -> bool:
        lease = _webhook_lease(event_type)
        claimed = self._update(
            batch_id,
            {lease: now + timedelta(seconds=lease_seconds)},
            condition=f"attribute_not_exists({lease}) OR {lease} < :now",
            condition_values={":now": now},
        )
        return claimed is not None

    def release_webhook(self, batch_id: str, event_type: str) -> None:
        self._update(batch_id, {_webhook_lease(event_type): None})


def _batch(item: Mapping[str, Any]) -> Batch:
    return Batch.model_validate({k: v for k, v in item.items() if k in Batch.model_fields})
