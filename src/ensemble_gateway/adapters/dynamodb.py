"""DynamoDB adapters: the predictions table, the service catalog and the client directory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from ..domain.models import Client, Prediction, PredictionStatus, Service, StepOutcome, utcnow
from .aws import LazyClient, error_code


def _to_item(value: Any) -> Any:
    """Plain JSON-ready data → DynamoDB-ready data (no None, no floats)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
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
            ExpressionAttributeValues={":s": {"S": status.value}, ":now": {"S": now.isoformat()}},
            Limit=limit,
        )
        found = []
        for raw in response.get("Items", []):
            prediction = self.get(self.table.deserialize(raw)["prediction_id"])
            if prediction is not None and prediction.status is status:
                found.append(prediction)
        return found

    # -- writing --------------------------------------------------------------------------
    def create(self, prediction: Prediction, *, claim_dispatch_until: datetime | None = None) -> bool:
        item: dict[str, Any] = {
            "record_type": "prediction",
            **prediction.model_dump(mode="json", exclude={"step_outputs"}),
            **{_outcome_attribute(k): v.model_dump_json() for k, v in prediction.step_outputs.items()},
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


def _is_bookkeeping(field: str) -> bool:
    """Fields of the gateway's own coordination, invisible in the public document."""
    return field in ("dispatch_lease_until", "dispatched_at") or field.startswith("webhook_lease_")


def _webhook_lease(event_type: str) -> str:
    return "webhook_lease_" + event_type.replace(".", "_")


_OUTCOME_PREFIX = "step_outcome#"


def _outcome_attribute(child_id: str) -> str:
    return _OUTCOME_PREFIX + child_id


def _prediction(item: Mapping[str, Any]) -> Prediction:
    fields = {k: v for k, v in item.items() if k in Prediction.model_fields}
    outcomes = {k[len(_OUTCOME_PREFIX) :]: v for k, v in item.items() if k.startswith(_OUTCOME_PREFIX)}
    if outcomes:
        fields["step_outputs"] = {k: StepOutcome.model_validate_json(v) for k, v in outcomes.items()}
    return Prediction.model_validate(fields)


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

    def delete(self, name: str) -> None:
        """Remove an entry (``services delete``; a missing entry is not an error)."""
        self.table.client.delete_item(TableName=self.table.table_name, Key=self.table.serialize({"name": name}))


class DynamoClientDirectory:
    """Clients by ID, with alias items for API-key hashes and IAM principals."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = DynamoTable(table_name, client)

    def get(self, client_id: str) -> Client | None:
        item = self.table.get_item({"client_id": client_id})
        if item is None or "document" not in item:
            return None
        return Client.model_validate_json(item["document"])

    def _by_alias(self, alias: str) -> Client | None:
        item = self.table.get_item({"client_id": alias})
        return self.get(item["target"]) if item else None

    def by_api_key_hash(self, api_key_hash: str) -> Client | None:
        return self._by_alias(f"apikey#{api_key_hash}")

    def by_principal(self, principal_arn: str) -> Client | None:
        return self._by_alias(f"principal#{principal_arn}")

    def put(self, client: Client) -> None:
        items = [{"client_id": client.client_id, "document": client.model_dump_json()}]
        if client.api_key_hash:
            items.append({"client_id": f"apikey#{client.api_key_hash}", "target": client.client_id})
        if client.principal_arn:
            items.append({"client_id": f"principal#{client.principal_arn}", "target": client.client_id})
        for item in items:
            self.table.client.put_item(TableName=self.table.table_name, Item=self.table.serialize(item))


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(_to_item(value), default=str)
