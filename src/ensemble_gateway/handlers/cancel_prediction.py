"""cancel-prediction: ``POST /predictions/{prediction_id}/cancel``.

A function of its own: it is the only route that ends predictions, so it alone of the API's
functions may stop ensemble executions, queue webhooks and put events; the others keep their
read-only (results) or create-only (new-prediction) roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import authenticator, cancellation, read_model
from ..domain.api import PredictionDocument, ResultDocument, ShadowDocument, StepDocument, build
from ..observability import count, logger, metrics, traced
from ..snapstart import register_hooks
from .api import authenticate, empty_body, json_response, make_resolver, resolve, unreadable_body

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.auth import Authenticator
    from ..domain.cancellation import Cancellation
    from ..domain.read_model import ReadModel

# Built at cold start: the document this function answers with (see domain/api.py).
build(PredictionDocument, ResultDocument, StepDocument, ShadowDocument)

app = make_resolver()


@dataclass(frozen=True)
class Dependencies:
    """What this function calls: who is asking, the cancellation, and the read model (the answer)."""

    authenticator: Authenticator
    cancellation: Cancellation
    read_model: ReadModel


def default_dependencies() -> Dependencies:
    """This process's (built once, at the first request)."""
    return Dependencies(authenticator=authenticator(), cancellation=cancellation(), read_model=read_model())


# SnapStart (the template's parameter): built, with the clients its requests use, before the snapshot.
register_hooks(default_dependencies, ("dynamodb", "s3", "stepfunctions", "sqs", "firehose", "events"))


@app.post("/predictions/<prediction_id>/cancel", summary="End a prediction that has not ended: CANCELLED")
def cancel(prediction_id: str) -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    empty_body(app)
    cancelled = dependencies.cancellation.cancel(client, prediction_id)
    count("PredictionsCancelled")
    return json_response(200, dependencies.read_model.document(cancelled))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Dependencies | None = None) -> dict[str, Any]:
    """API Gateway's proxy event in, its answer out.

    ``dependencies`` replaces this process's use cases (tests inject fakes).
    """
    return unreadable_body(event) or resolve(app, event, context, dependencies or default_dependencies())
