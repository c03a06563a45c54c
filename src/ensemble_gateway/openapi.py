"""The OpenAPI document of the public API, built from the handlers' own routes and models.

Powertools generates one document per resolver; the API has four (new-prediction, results,
cancel-prediction and batches), so they are merged here, and the error answers the handlers really give
(``ErrorDocument`` with 400, 401, 404, 409, 422) replace the framework's default validation
response. Parameters the handlers read themselves (query strings, headers) are added here.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from . import __version__
from .domain.api import (
    BatchDocument,
    ErrorDocument,
    NewBatchRequest,
    NewBatchResponse,
    NewPredictionRequest,
    NewPredictionResponse,
    PredictionDocument,
    PredictionListDocument,
    ServiceListDocument,
    UploadRenewalDocument,
)
from .domain.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_TOKEN_LENGTH
from .domain.models import PREDICTION_STATUSES, SERVICE_NAME_PATTERN
from .domain.request_json import MAX_IDEMPOTENCY_KEY_LENGTH

TITLE = "Ensemble Gateway"
ERRORS = {
    "/predictions": {
        "post": {
            "400": "Invalid request (the message names the field)",
            "401": "Unauthenticated",
            "404": "Unknown service",
            "409": "Idempotency-Key reused with another body, or no version of the service is approved to serve",
            "415": "The body is not application/json",
            "422": "Service inactive",
        },
        "get": {
            "400": "Invalid query (the message names the parameter), or a next_token of another listing",
            "401": "Unauthenticated",
        },
    },
    "/predictions/{prediction_id}": {"get": {"401": "Unauthenticated", "404": "Unknown prediction"}},
    "/predictions/{prediction_id}/cancel": {
        "post": {
            "400": "A body was sent (this request takes none)",
            "401": "Unauthenticated",
            "404": "Unknown prediction",
            "409": "The prediction had already ended (COMPLETED, FAILED or EXPIRED)",
            "415": "The body is not application/json",
        }
    },
    "/predictions/{prediction_id}/upload": {
        "post": {
            "400": "A body was sent (this request takes none)",
            "401": "Unauthenticated",
            "404": "Unknown prediction",
            "409": "The prediction no longer awaits its upload (not PENDING_UPLOAD)",
            "415": "The body is not application/json",
        }
    },
    "/services": {"get": {"401": "Unauthenticated"}},
    "/batches": {
        "post": {
            "400": "Invalid request (the message names the field), or a manifest_uri in a bucket the gateway "
            "does not read",
            "401": "Unauthenticated",
            "404": "Unknown service",
            "409": "Idempotency-Key reused with another body",
            "415": "The body is not application/json",
            "422": "Service inactive",
        }
    },
    "/batches/{batch_id}": {"get": {"401": "Unauthenticated", "404": "Unknown batch"}},
    "/batches/{batch_id}/cancel": {
        "post": {
            "400": "A body was sent (this request takes none)",
            "401": "Unauthenticated",
            "404": "Unknown batch",
            "409": "The batch had already ended (COMPLETED, COMPLETED_WITH_FAILURES or FAILED)",
            "415": "The body is not application/json",
        }
    },
}
SUCCESS: dict[tuple[str, str], tuple[str, str, type[BaseModel]]] = {
    ("/predictions", "post"): ("202", "Accepted: upload the input with the presigned POST", NewPredictionResponse),
    ("/predictions", "get"): ("200", "A page of your own predictions, newest first", PredictionListDocument),
    ("/predictions/{prediction_id}", "get"): ("200", "The prediction", PredictionDocument),
    ("/predictions/{prediction_id}/cancel", "post"): (
        "200",
        "The prediction, CANCELLED (also when it was cancelled already)",
        PredictionDocument,
    ),
    ("/predictions/{prediction_id}/upload", "post"): (
        "200",
        "A new upload form, valid for the upload expiry from now; the upload window moves with it",
        UploadRenewalDocument,
    ),
    ("/services", "get"): ("200", "The active services", ServiceListDocument),
    ("/batches", "post"): (
        "202",
        "Accepted: upload the manifest with the presigned POST (unless manifest_uri was given)",
        NewBatchResponse,
    ),
    ("/batches/{batch_id}", "get"): ("200", "The batch: status, counts, and its result when finished", BatchDocument),
    ("/batches/{batch_id}/cancel", "post"): (
        "200",
        "The batch, CANCELLED (also when it was cancelled already); its result follows once its running items "
        "are cancelled",
        BatchDocument,
    ),
}
# GET /predictions: read by domain/listing.py (ListRequest.from_query), which checks the same.
LIST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only predictions with this status",
        "schema": {"type": "string", "enum": [status.value for status in PREDICTION_STATUSES]},
    },
    {
        "name": "service",
        "in": "query",
        "required": False,
        "description": "Only predictions of this service",
        "schema": {"type": "string", "maxLength": 63, "pattern": SERVICE_NAME_PATTERN.pattern},
    },
    {
        "name": "created_after",
        "in": "query",
        "required": False,
        "description": "Only predictions created after this moment (ISO 8601; UTC without an offset)",
        "schema": {"type": "string", "format": "date-time"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "At most this many predictions in the page",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "next_token",
        "in": "query",
        "required": False,
        "description": "The next_token of the previous page (with the same filters)",
        "schema": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
    },
]


def _add_model(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document() -> dict[str, Any]:
    """The merged OpenAPI 3.1 document of every route of the API."""
    from .handlers import batches, cancel_prediction, new_prediction, results

    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": __version__,
            "description": "Submit predictions to models and ensembles of models; upload the input with the "
            "presigned POST; get told by a Standard Webhooks webhook or an EventBridge event, or poll.",
        },
        "paths": {},
        "components": {"schemas": {}},
    }
    for app in (new_prediction.app, results.app, cancel_prediction.app, batches.app):
        document = json.loads(app.get_openapi_json_schema(title=TITLE, version=__version__))
        # By method: two functions serve /predictions (POST and GET).
        for path, operations in document.get("paths", {}).items():
            merged["paths"].setdefault(path, {}).update(operations)
        merged["components"]["schemas"].update(document.get("components", {}).get("schemas", {}))
    schemas = merged["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.pop("ResponseValidationError", None)
    error_ref = _add_model(schemas, ErrorDocument)
    for (path, method), (status, description, model) in SUCCESS.items():
        operation = merged["paths"][path][method]
        operation["responses"] = {
            status: {
                "description": description,
                "content": {"application/json": {"schema": _add_model(schemas, model)}},
            }
        }
        for code, text in ERRORS[path][method].items():
            operation["responses"][code] = {"description": text, "content": {"application/json": {"schema": error_ref}}}
        operation["security"] = [{"sigv4": []}, {"bearer": []}]
        operation.pop("requestBody", None)
    merged["paths"]["/predictions"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _add_model(schemas, NewPredictionRequest)}},
    }
    merged["paths"]["/batches"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _add_model(schemas, NewBatchRequest)}},
    }
    for path, what in (("/predictions", "prediction"), ("/batches", "batch")):
        merged["paths"][path]["post"]["parameters"] = [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": f"The same key and body within 24 h return the same {what}",
                # What domain/request_json.py accepts: 1 to 255 visible ASCII characters.
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
                    "pattern": "^[!-~]+$",
                },
            }
        ]
    merged["paths"]["/predictions"]["get"]["parameters"] = LIST_PARAMETERS
    merged["components"]["securitySchemes"] = {
        "sigv4": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "description": "AWS SigV4 (IAM) on AWS: API Gateway's AWS_IAM authorization",
        },
        "bearer": {"type": "http", "scheme": "bearer", "description": "API key, in the local runtime"},
    }
    return merged


def main() -> None:
    print(json.dumps(openapi_document(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
