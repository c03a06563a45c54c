"""new-prediction: ``POST /predictions`` and ``GET /services``."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..bootstrap import gateway
from ..domain.api import NewPredictionRequest, NewPredictionResponse, ServiceDocument, ServiceListDocument
from ..domain.errors import InvalidRequestError
from ..observability import logger, metrics, tracer
from .api import authenticate, header, make_resolver, unreadable_body

app = make_resolver()


@app.post(
    "/predictions",
    summary="Submit a prediction request",
    responses={
        202: {
            "description": "Accepted: upload the input to the presigned POST",
            "content": {"application/json": {"schema": NewPredictionResponse.model_json_schema()}},
        }
    },
)
def submit(request: Annotated[NewPredictionRequest, Body()]) -> Response[NewPredictionResponse]:
    client = authenticate(app)
    raw: Any = app.current_event.json_body
    if not isinstance(raw, dict):
        # Powertools validates a JSON list by its first element: refuse anything but an object.
        raise InvalidRequestError("the request body must be a JSON object")
    accepted = gateway().submit(client, request, idempotency_key=header(app, "Idempotency-Key"), raw_body=raw)
    metrics.add_metric(name="PredictionsAccepted", unit="Count", value=1)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=accepted)


@app.get("/services", summary="List the active services")
def list_services() -> ServiceListDocument:
    authenticate(app)
    return ServiceListDocument(services=[ServiceDocument.of(s) for s in gateway().list_services()])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return unreadable_body(event) or app.resolve(event, context)
