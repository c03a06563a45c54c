"""The ClientDirectory contract (domain/ports.py), on the fake and on DynamoDB."""

from __future__ import annotations

from typing import Any

from ensemble_gateway.adapters.dynamodb import hash_api_key
from ensemble_gateway.domain.models import Client

ROLE = "arn:aws:iam::123456789012:role/partner"


def client(client_id: str = "c1", **fields: Any) -> Client:
    return Client(client_id=client_id, name=f"client {client_id}", webhook_secrets=["whsec_a", "whsec_b"], **fields)


def test_a_client_is_found_by_id_api_key_and_principal(clients: Any) -> None:
    # GIVEN a client with an API key and an IAM principal, and one with neither
    keyed = client("c1", api_key_hash=hash_api_key("key-1"), principal_arn=ROLE)
    bare = client("c2")
    clients.put(keyed)
    clients.put(bare)

    # WHEN each is looked up every way
    # THEN the client is found, whole, by what it has
    assert clients.get("c1") == keyed
    assert clients.by_api_key_hash(hash_api_key("key-1")) == keyed
    assert clients.by_principal(ROLE) == keyed
    assert clients.get("c2") == bare


def test_unknown_clients_keys_and_principals_find_nothing(clients: Any) -> None:
    # GIVEN a client
    clients.put(client("c1", api_key_hash=hash_api_key("key-1"), principal_arn=ROLE))

    # WHEN other IDs, keys and principals are looked up
    # THEN none finds anything
    assert clients.get("nope") is None
    assert clients.by_api_key_hash(hash_api_key("key-2")) is None
    assert clients.by_principal("arn:aws:iam::123456789012:role/other") is None


def test_putting_a_client_again_replaces_it(clients: Any) -> None:
    # GIVEN a client
    clients.put(client("c1", api_key_hash=hash_api_key("key-1")))

    # WHEN it is put again with its secrets rotated
    rotated = client("c1", api_key_hash=hash_api_key("key-1")).model_copy(update={"webhook_secrets": ["whsec_new"]})
    clients.put(rotated)

    # THEN it is found as it is now, by ID and by key
    assert clients.get("c1") == rotated
    assert clients.by_api_key_hash(hash_api_key("key-1")) == rotated


def test_a_client_put_with_a_new_key_and_principal_is_not_found_by_the_old_ones(clients: Any) -> None:
    # GIVEN a client with an API key and a principal
    clients.put(client("c1", api_key_hash=hash_api_key("old-key"), principal_arn=ROLE))

    # WHEN it is put again with another key and another principal
    replaced = client("c1", api_key_hash=hash_api_key("new-key"), principal_arn=f"{ROLE}-2")
    clients.put(replaced)

    # THEN the new ones find it, and the old ones no longer do
    assert clients.by_api_key_hash(hash_api_key("new-key")) == replaced
    assert clients.by_principal(f"{ROLE}-2") == replaced
    assert clients.by_api_key_hash(hash_api_key("old-key")) is None
    assert clients.by_principal(ROLE) is None


def test_a_client_is_found_by_its_key_or_principal_in_one_read(clients: Any) -> None:
    # GIVEN a client with an API key and a principal, put, then put again changed
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory

    clients.put(client("c1", api_key_hash=hash_api_key("key-1"), principal_arn=ROLE))
    changed = client("c1", api_key_hash=hash_api_key("key-1"), principal_arn=ROLE).model_copy(
        update={"name": "renamed"}
    )
    clients.put(changed)
    reads: list[Any] = []
    if isinstance(clients, DynamoClientDirectory):
        original = clients.table.get_item

        def counting(key: Any) -> Any:
            reads.append(key)
            return original(key)

        clients.table.get_item = counting  # type: ignore[method-assign]

    # WHEN it is looked up by key and by principal
    # THEN the current client is found, with one read each (on DynamoDB)
    assert clients.by_api_key_hash(hash_api_key("key-1")) == changed
    assert clients.by_principal(ROLE) == changed
    if isinstance(clients, DynamoClientDirectory):
        assert len(reads) == 2
    # AND an alias is never taken for a client of its own
    assert clients.get(f"apikey#{hash_api_key('key-1')}") is None
