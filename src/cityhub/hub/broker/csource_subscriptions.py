"""Context source registration subscriptions (ETSI GS CIM 009 v1.8, clause 5.11):
``/csourceSubscriptions`` create, retrieve, query, update, delete.

They are subscriptions of the kind ``registrations``, kept, validated and shown like subscriptions
to entities (``subscriptions``) and delivered by the same notifier; what they match and how their
notifications look is ``csource_notify``'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cityhub.hub.broker import subscriptions
from cityhub.hub.broker.http import Broker
from cityhub.hub.broker.models import REGISTRATIONS
from cityhub.kit.errors import MethodNotAllowed

router = APIRouter(prefix="/csourceSubscriptions")


@router.post("", status_code=201, summary="Subscribe to context source registrations")
@router.post("/", status_code=201, include_in_schema=False)
async def create_csource_subscription(broker: Broker) -> Response:
    return await subscriptions.create(broker, REGISTRATIONS)


@router.get("/{subscription_id}", summary="Retrieve a csource subscription")
async def retrieve_csource_subscription(
    broker: Broker, subscription_id: str, options: str | None = None
) -> Response:
    return await subscriptions.retrieve(broker, subscription_id, options, REGISTRATIONS)


@router.get("", summary="Query csource subscriptions")
@router.get("/", include_in_schema=False)
async def query_csource_subscriptions(
    broker: Broker,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    options: str | None = None,
) -> Response:
    return await subscriptions.query(broker, limit, offset, count, options, REGISTRATIONS)


@router.patch("/{subscription_id}", status_code=204, summary="Update a csource subscription")
async def update_csource_subscription(broker: Broker, subscription_id: str) -> Response:
    return await subscriptions.update(broker, subscription_id, REGISTRATIONS)


@router.delete("/{subscription_id}", status_code=204, summary="Delete a csource subscription")
async def delete_csource_subscription(broker: Broker, subscription_id: str) -> Response:
    return await subscriptions.remove(broker, subscription_id, REGISTRATIONS)


@router.api_route("/", methods=["PATCH", "DELETE"], include_in_schema=False)
async def missing_csource_subscription_id() -> Response:
    raise MethodNotAllowed("PATCH and DELETE need a subscription id: /csourceSubscriptions/{subscriptionId}")
