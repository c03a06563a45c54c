"""The OpenAPI document of the public API, built from the handlers' own routes and models.

Powertools generates one document per resolver; the API has two (new-prediction and results), so
they are merged here, and the error answers the handlers really give (``ErrorDocument`` with 400,
401, 404, 409, 422) replace the framework's default validation response.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from . import __version__
from .domain.api import (
    ErrorDocument,
    NewPredictionRequest,
    NewPredictionResponse,
    PredictionDocument,
    ServiceListDocument,
)

TITLE = "Ensemble Gateway"
ERRORS = {
    "/predictions": {
        "post": {
            "400": "Invalid request (the message names the field)",
            "401": "Unauthenticated",
            "404": "Unknown service",
            "409": "Idempotency-Key reused with another body",
            "415": "The body is not application/json",
            "422": "Service inactive",
        }
    },
    "/predictions/{prediction_id}": {"get": {"401": "Unauthenticated", "404": "Unknown prediction"}},
    "/services": {"get": {"401": "Unauthenticated"}},
}
SUCCESS: dict[tuple[str, str], tuple[str, str, type[BaseModel]]] = {
    ("/predictions", "post"): ("202", "Accepted: upload the input with the presigned POST", NewPredictionResponse),
    ("/predictions/{prediction_id}", "get"): ("200", "The prediction", PredictionDocument),
    ("/services", "get"): ("200", "The active services", ServiceListDocument),
}


def _add_model(components: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document() -> dict[str, Any]:
    """The merged OpenAPI 3.1 document of ``POST /predictions``, ``GET /predictions/{id}``, ``GET /services``."""
    from .handlers import new_prediction, results

    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": __version__,
            "description": "Submit predictions to models and ensembles of models; upload the input with the "
            "presigned POST; get told by a Standard Webhooks webhook or poll.",
        },
        "paths": {},
        "components": {"schemas": {}},
    }
    for app in (new_prediction.app, results.app):
        document = json.loads(app.get_openapi_json_schema(title=TITLE, version=__version__))
        merged["paths"].update(document.get("paths", {}))
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
    merged["paths"]["/predictions"]["post"]["parameters"] = [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "The same key and body within 24 h return the same prediction",
            "schema": {"type": "string", "maxLength": 255},
        }
    ]
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
