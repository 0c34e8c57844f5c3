"""One error hierarchy, rendered as RFC 7807 problem details.

The problem types are the NGSI-LD ones (ETSI GS CIM 009, clause 5.5.2) where they fit, so the broker
and every other API answer in one shape. Endpoints raise these; they never build error bodies by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar

NGSI_LD_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
HUB_ERRORS = "urn:cityhub:problem:"


class HubError(Exception):
    """Base of every error the hub answers with; subclasses set status, type and title."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = NGSI_LD_ERRORS + "InternalError"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestData(HubError):
    status = 400
    type = NGSI_LD_ERRORS + "BadRequestData"
    title = "Bad request data"


class InvalidRequest(HubError):
    """The request itself is malformed: body not JSON, wrong content, unusable parameters."""

    status = 400
    type = NGSI_LD_ERRORS + "InvalidRequest"
    title = "Invalid request"


class Unauthorized(HubError):
    status = 401
    type = HUB_ERRORS + "unauthorized"
    title = "Authentication required"


class Forbidden(HubError):
    status = 403
    type = HUB_ERRORS + "forbidden"
    title = "Forbidden"


class NotFound(HubError):
    status = 404
    type = NGSI_LD_ERRORS + "ResourceNotFound"
    title = "Resource not found"


class NonexistentTenant(HubError):
    status = 404
    type = NGSI_LD_ERRORS + "NonexistentTenant"
    title = "Tenant does not exist"


class MethodNotAllowed(HubError):
    status = 405
    type = HUB_ERRORS + "method-not-allowed"
    title = "Method not allowed"


class AlreadyExists(HubError):
    status = 409
    type = NGSI_LD_ERRORS + "AlreadyExists"
    title = "Already exists"


class Conflict(HubError):
    """The request is valid but the resource's current state forbids it (an invalid transition)."""

    status = 409
    type = HUB_ERRORS + "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(HubError):
    status = 413
    type = HUB_ERRORS + "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(HubError):
    status = 415
    type = HUB_ERRORS + "unsupported-media-type"
    title = "Unsupported media type"


class UnprocessableEntity(HubError):
    status = 422
    type = NGSI_LD_ERRORS + "OperationNotSupported"
    title = "Operation not supported"


class TooManyRequests(HubError):
    status = 429
    type = HUB_ERRORS + "too-many-requests"
    title = "Too many requests"


class ServiceUnavailable(HubError):
    status = 503
    type = HUB_ERRORS + "service-unavailable"
    title = "Service unavailable"
