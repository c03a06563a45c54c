"""results: ``GET /predictions/{prediction_id}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import gateway
from ..domain.api import PredictionDocument, ResultDocument, StepDocument, build
from ..observability import logger, traced
from .api import authenticate, json_response, make_resolver

if TYPE_CHECKING:
    # Only a type annotation: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Built at cold start: the documents this function answers with (see domain/api.py).
build(PredictionDocument, ResultDocument, StepDocument)

app = make_resolver()


@app.get("/predictions/<prediction_id>", summary="Status, lineage and result of a prediction")
def get_prediction(prediction_id: str) -> Response[str]:
    client = authenticate(app)
    service = gateway()
    return json_response(200, service.document(service.get_owned(client, prediction_id)))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
