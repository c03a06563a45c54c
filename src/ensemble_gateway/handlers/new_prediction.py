"""new-prediction: ``POST /predictions``, ``POST /predictions/{prediction_id}/upload`` and ``GET /services``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import authenticator, intake
from ..domain.api import (
    NewPredictionRequest,
    NewPredictionResponse,
    ServiceDocument,
    ServiceListDocument,
    UploadDocument,
    UploadRenewalDocument,
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
    from ..domain.intake import Intake

# Built at cold start: the documents this function validates or answers with (see domain/api.py).
build(
    NewPredictionRequest,
    NewPredictionResponse,
    UploadDocument,
    UploadRenewalDocument,
    ServiceListDocument,
    ServiceDocument,
)

app = make_resolver()


@dataclass(frozen=True)
class Dependencies:
    """What this function calls: who is asking, and intake."""

    authenticator: Authenticator
    intake: Intake


def default_dependencies() -> Dependencies:
    """This process's (built once, at the first request)."""
    return Dependencies(authenticator=authenticator(), intake=intake())


# SnapStart (the template's parameter): built, with the clients its requests use, before the snapshot.
# An input given inline is dispatched in the request: the model, workflow and queue clients too.
register_hooks(default_dependencies, ("dynamodb", "s3", "sagemaker-runtime", "stepfunctions", "sqs"))


@app.post("/predictions", summary="Submit a prediction request")
def submit() -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    body = json_object_body(app)
    request = NewPredictionRequest.model_validate(body)
    idempotency_key = app.current_event.headers.get("Idempotency-Key")
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    accepted = dependencies.intake.submit(client, request, idempotency_key=idempotency_key, raw_body=body)
    count("PredictionsAccepted")
    return json_response(202, accepted)


@app.post("/predictions/<prediction_id>/upload", summary="A new upload form while the input is awaited")
def renew_upload(prediction_id: str) -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    empty_body(app)
    return json_response(200, dependencies.intake.renew_upload(client, prediction_id))


@app.get("/services", summary="List the active services")
def list_services() -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    authenticate(app, dependencies.authenticator)
    services = dependencies.intake.list_services()
    return json_response(200, ServiceListDocument(services=[ServiceDocument.of(s) for s in services]))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Dependencies | None = None) -> dict[str, Any]:
    """API Gateway's proxy event in, its answer out.

    ``dependencies`` replaces this process's use cases (tests inject fakes).
    """
    return unreadable_body(event) or resolve(app, event, context, dependencies or default_dependencies())
