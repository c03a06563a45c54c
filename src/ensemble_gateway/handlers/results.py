"""results: ``GET /predictions/{prediction_id}``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..bootstrap import gateway
from ..domain.api import PredictionDocument
from ..observability import logger, tracer
from .api import authenticate, make_resolver

app = make_resolver()


@app.get("/predictions/<prediction_id>", summary="Status, lineage and result of a prediction")
def get_prediction(prediction_id: str) -> Response[PredictionDocument]:
    client = authenticate(app)
    service = gateway()
    document = service.document(service.get_owned(client, prediction_id))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
