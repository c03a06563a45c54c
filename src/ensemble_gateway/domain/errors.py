"""Domain errors. Each maps to one HTTP status or one failure code."""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""

    http_status = 500
    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(GatewayError):
    """The request is malformed or names something it may not (HTTP 400)."""

    http_status = 400
    code = "InvalidRequest"


class InputTooLargeError(InvalidRequestError):
    """An input given inline is larger than the gateway takes inline (HTTP 413)."""

    http_status = 413
    code = "InputTooLarge"


class UnauthenticatedError(GatewayError):
    """No valid credentials came with the request (HTTP 401)."""

    http_status = 401
    code = "Unauthenticated"


class NotFoundError(GatewayError):
    """Unknown resource, or one owned by another client (HTTP 404)."""

    http_status = 404
    code = "NotFound"


class ConflictError(GatewayError):
    """An idempotency key was reused with a different body (HTTP 409)."""

    http_status = 409
    code = "Conflict"


class ServiceInactiveError(GatewayError):
    """The service exists but does not take predictions now (HTTP 422)."""

    http_status = 422
    code = "ServiceInactive"


class CatalogValidationError(GatewayError):
    """A service or ensemble definition is invalid; nothing was registered."""

    http_status = 400
    code = "InvalidService"


class MappingError(GatewayError):
    """An ensemble step's input mapping could not be applied."""

    http_status = 400
    code = "MappingError"

    def __init__(
        self, message: str, *, step: str | None = None, key: str | None = None, path: str | None = None
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"step '{step}'" if step else "",
                f"key '{key}'" if key else "",
                f"path '{path}'" if path else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.step = step
        self.key = key
        self.path = path


class DispatchError(GatewayError):
    """A model or workflow could not be invoked (the prediction fails with this reason)."""

    code = "DispatchFailed"


class ModelInvocationError(Exception):
    """A model answered with an error (the prediction fails with this reason).

    ``message`` is what the user reads (the model's own message); ``detail`` is the whole answer
    (SageMaker's wording, the model's status code), kept in the prediction's failure object.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message


class WebhookTransportError(Exception):
    """A webhook could not be delivered: connection refused, timeout, TLS error, too large."""


class ModelHostingError(GatewayError):
    """A model's endpoint could not be created or updated (its model failed to load, say)."""

    code = "ModelHostingFailed"
