"""results: ``GET /predictions/{prediction_id}`` and ``GET /predictions`` (the caller's own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths

from ..bootstrap import authenticator, listing, read_model
from ..domain.api import PredictionDocument, PredictionListDocument, ResultDocument, ShadowDocument, StepDocument, build
from ..domain.listing import ListRequest
from ..observability import logger, traced
from ..snapstart import register_hooks
from .api import authenticate, json_response, make_resolver, resolve

if TYPE_CHECKING:
    # Only type annotations: nothing to import at cold start.
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..domain.auth import Authenticator
    from ..domain.listing import Listing
    from ..domain.read_model import ReadModel

# Built at cold start: the documents this function answers with (see domain/api.py).
build(PredictionDocument, ResultDocument, StepDocument, ShadowDocument, PredictionListDocument)

app = make_resolver()


@dataclass(frozen=True)
class Dependencies:
    """What this function calls: who is asking, the read model and the listing."""

    authenticator: Authenticator
    read_model: ReadModel
    listing: Listing


def default_dependencies() -> Dependencies:
    """This process's (built once, at the first request)."""
    return Dependencies(authenticator=authenticator(), read_model=read_model(), listing=listing())


# SnapStart (the template's parameter): built, with the clients its requests use, before the snapshot.
register_hooks(default_dependencies, ("dynamodb", "s3"))


@app.get("/predictions/<prediction_id>", summary="Status, lineage and result of a prediction")
def get_prediction(prediction_id: str) -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    documents = dependencies.read_model
    return json_response(200, documents.document(documents.get_owned(client, prediction_id)))


@app.get("/predictions", summary="List your own predictions, newest first")
def list_predictions() -> Response[str]:
    dependencies: Dependencies = app.context["dependencies"]
    client = authenticate(app, dependencies.authenticator)
    request = ListRequest.from_query(app.current_event.query_string_parameters)
    return json_response(200, dependencies.listing.list(client, request))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@traced
def handler(event: dict[str, Any], context: LambdaContext, dependencies: Dependencies | None = None) -> dict[str, Any]:
    """API Gateway's proxy event in, its answer out.

    ``dependencies`` replaces this process's use cases (tests inject fakes).
    """
    return resolve(app, event, context, dependencies or default_dependencies())
