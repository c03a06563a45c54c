"""new-prediction: ``POST /predictions`` and ``GET /services``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import gateway
from ..domain.api import (
    NewPredictionRequest,
    NewPredictionResponse,
    ServiceDocument,
    ServiceListDocument,
    UploadDocument,
    build,
)
from ..domain.request_json import check_idempotency_key
from ..observability import count, logger, metrics, traced
from .api import authenticate, json_object_body, json_response, make_resolver, unreadable_body

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Built at cold start: the documents this function validates or answers with (see domain/api.py).
build(NewPredictionRequest, NewPredictionResponse, UploadDocument, ServiceListDocument, ServiceDocument)

app = make_resolver()


@app.post("/predictions", summary="Submit a prediction request")
def submit() -> Response[str]:
    client = authenticate(app)
    body = json_object_body(app)
    request = NewPredictionRequest.model_validate(body)
    idempotency_key = app.current_event.headers.get("Idempotency-Key") or None
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    accepted = gateway().submit(client, request, idempotency_key=idempotency_key, raw_body=body)
    count("PredictionsAccepted")
    return json_response(202, accepted)


@app.get("/services", summary="List the active services")
def list_services() -> Response[str]:
    authenticate(app)
    return json_response(200, ServiceListDocument(services=[ServiceDocument.of(s) for s in gateway().list_services()]))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return unreadable_body(event) or app.resolve(event, context)
