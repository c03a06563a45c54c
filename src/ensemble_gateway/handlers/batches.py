"""batches: ``POST /batches``, ``GET /batches/{batch_id}`` and ``POST /batches/{batch_id}/cancel``.

A function of its own: it records, renders and cancels batches and ticks the batch driver, and
nothing else (no model, no item); the driver does the work (``handlers/batch_driver.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import authenticator, batches
from ..domain.api import (
    BatchCountsDocument,
    BatchDocument,
    NewBatchRequest,
    NewBatchResponse,
    ResultDocument,
    UploadDocument,
    build,
)
from ..domain.request_json import check_idempotency_key
from ..observability import count, logger, metrics, traced
from ..snapstart import register_hooks
from .api import authenticate, empty_body, json_object_body, json_response, make_resolver, resolve, unreadable_body

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.auth import Authenticator
    from ..domain.batches import Batches

# Built at cold start: the documents this function validates or answers with (see domain/api.py).
build(NewBatchRequest, NewBatchResponse, UploadDocument, BatchDocument, BatchCountsDocument, ResultDocument)

app = make_resolver()


@dataclass(frozen=True)
class Dependencies:
    """What this function calls: who is asking, and the batches."""

    authenticator: Authenticator
    batches: Batches


def default_dependencies() -> Dependencies:
    """This process's (built once, at the first request)."""
    return Dependencies(authenticator=authenticator(), batches=batches())


# SnapStart (the template's parameter): built, with the clients its requests use, before the snapshot.
register_hooks(default_dependencies, ("dynamodb", "s3", "sqs"))


@app.post("/batches", summary="Submit a batch: one prediction per line of a JSON Lines manifest")
def submit() -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    body = json_object_body(app)
    request = NewBatchRequest.model_validate(body)
    idempotency_key = app.current_event.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    accepted = dependencies.batches.submit(client, request, idempotency_key=idempotency_key, raw_body=body)
    count("BatchesAccepted")
    return json_response(202, accepted)


@app.get("/batches/<batch_id>", summary="Status, counts and result of a batch")
def get_batch(batch_id: str) -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    found = dependencies.batches
    return json_response(200, found.document(found.get_owned(client, batch_id)))


@app.post("/batches/<batch_id>/cancel", summary="End a batch that has not ended: CANCELLED")
def cancel(batch_id: str) -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    empty_body(app)
    cancelled = dependencies.batches.cancel(client, batch_id)
    count("BatchesCancelled")
    return json_response(200, dependencies.batches.document(cancelled))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Dependencies | None = None) -> dict[str, Any]:
    """API Gateway's proxy event in, its answer out.

    ``dependencies`` replaces this process's use cases (tests inject fakes).
    """
    return unreadable_body(event) or resolve(app, event, context, dependencies or default_dependencies())
