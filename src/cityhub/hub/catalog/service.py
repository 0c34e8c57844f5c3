"""Catalog logic over storage. Functions take the session first (scoped to the dataset's tenant)
and never commit; the request does. Who may do what is :mod:`cityhub.hub.catalog.access`'s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.broker import protection
from cityhub.hub.broker.local import expand
from cityhub.hub.broker.models import BrokerEntity, BrokerEntityType
from cityhub.hub.catalog import access
from cityhub.hub.catalog.access import Caller
from cityhub.hub.catalog.models import (
    APPROVED,
    CONDITIONAL,
    EXPIRED,
    NOT_SHARED,
    PENDING,
    REJECTED,
    REVOKED,
    Dataset,
    DatasetType,
    SharingRequest,
)
from cityhub.hub.catalog.schemas import (
    DatasetCreate,
    DatasetRead,
    DatasetUpdate,
    Decision,
    FieldRead,
    FieldSpec,
    Revocation,
    SharingRequestCreate,
    Statistics,
)
from cityhub.kit.db import current_tenant
from cityhub.kit.errors import AlreadyExists, BadRequestData, Conflict, Forbidden, NotFound
from cityhub.kit.time import utcnow
from cityhub.systems.security import audit
from cityhub.systems.security.models import Department


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "catalog sessions are scoped to a tenant"
    return tenant


def _types(names: Sequence[str]) -> list[str]:
    expanded = list(dict.fromkeys(expand(name.strip()) for name in names))
    if any(not name for name in expanded):
        raise BadRequestData("an entity type name is empty")
    return expanded


async def _department(session: AsyncSession, department_id: uuid.UUID, tenant: str) -> Department:
    department = await session.get(Department, department_id)
    if department is None or department.tenant_code != tenant:
        raise BadRequestData(f"department {department_id} is not a department of tenant {tenant}")
    return department


def _check_sharing(sharing: str, conditions: str | None) -> None:
    if sharing == NOT_SHARED and not (conditions and conditions.strip()):
        raise BadRequestData("a dataset that is not shared must cite its legal basis in conditions")


async def _claim_types(session: AsyncSession, dataset: Dataset, types: list[str], caller: Caller) -> None:
    """Make ``types`` the dataset's entity types.

    - A type in a dataset of another department is a conflict (an administrator hands datasets
      over instead).
    - A type in another dataset of the same department moves here, unless that would leave it
      without types (a department splits and merges its own datasets).
    - A type no dataset holds is registered by an administrator only: claiming it takes it away
      from every department that reads it by role today, so it is the catalog custodian's call,
      not one department's (which could otherwise squat on another's data).
    """
    rows = (
        await session.execute(
            select(DatasetType.entity_type, DatasetType.dataset_id, Dataset.code, Dataset.department_id)
            .join(Dataset, Dataset.id == DatasetType.dataset_id)
            .where(DatasetType.entity_type.in_(types), DatasetType.dataset_id != dataset.id)
        )
    ).all()
    foreign = [(t, code) for t, _, code, owner in rows if owner != dataset.department_id]
    if foreign:
        names = ", ".join(f"{t} ({code})" for t, code in foreign)
        raise Conflict(f"entity types already in a dataset of another department: {names}")
    held = set(
        await session.scalars(select(DatasetType.entity_type).where(DatasetType.dataset_id == dataset.id))
    )
    unowned = sorted(set(types) - held - {t for t, *_ in rows})
    if unowned and not caller.admin:
        raise Forbidden(
            "entity types in no dataset are registered by an administrator (a department registers "
            f"the types of its own datasets): {', '.join(unowned)}"
        )
    moved: dict[uuid.UUID, str] = {dataset_id: code for _, dataset_id, code, _ in rows}
    for dataset_id, code in moved.items():
        left = await session.scalar(
            select(func.count())
            .select_from(DatasetType)
            .where(DatasetType.dataset_id == dataset_id, DatasetType.entity_type.not_in(types))
        )
        if not left:
            raise Conflict(f"moving its entity types here would leave dataset {code} without any")
    await session.execute(
        delete(DatasetType).where((DatasetType.dataset_id == dataset.id) | DatasetType.entity_type.in_(types))
    )
    session.add_all(DatasetType(entity_type=t, dataset_id=dataset.id) for t in types)


def _fields(specs: Sequence[FieldSpec]) -> list[dict[str, Any]]:
    return [spec.model_dump() | {"name": expand(spec.name)} for spec in specs]


async def create_dataset(session: AsyncSession, body: DatasetCreate, caller: Caller) -> Dataset:
    tenant = _tenant(session)
    owner = body.department_id or caller.department_id
    if owner is None:
        raise BadRequestData("name the owner department: department_id (you belong to no department)")
    if not access.may_write(caller, owner):
        raise Forbidden("a dataset is registered by its own department or an administrator")
    await _department(session, owner, tenant)
    _check_sharing(body.sharing, body.conditions)
    if await session.scalar(select(Dataset.id).where(Dataset.code == body.code)) is not None:
        raise AlreadyExists(f"dataset {body.code} already exists in tenant {tenant}")
    now = utcnow()
    dataset = Dataset(
        code=body.code,
        title=body.title,
        title_en=body.title_en,
        description=body.description,
        department_id=owner,
        sharing=body.sharing,
        conditions=body.conditions,
        update_frequency=body.update_frequency,
        fields=_fields(body.fields),
        created_by=caller.name,
        created_at=now,
        updated_at=now,
    )
    session.add(dataset)
    await session.flush()
    await _claim_types(session, dataset, _types(body.entity_types), caller)
    await session.flush()
    return dataset


async def get_dataset(session: AsyncSession, dataset_id: uuid.UUID) -> Dataset:
    dataset = (await session.scalars(select(Dataset).where(Dataset.id == dataset_id))).first()
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


async def readable_dataset(session: AsyncSession, dataset_id: uuid.UUID, caller: Caller) -> Dataset:
    """The dataset if the caller may see its catalog entry; 403 otherwise."""
    dataset = await get_dataset(session, dataset_id)
    if not access.may_list(caller, dataset.department_id, dataset.sharing):
        raise Forbidden(f"dataset {dataset.code} is not shared outside its department")
    return dataset


async def writable_dataset(session: AsyncSession, dataset_id: uuid.UUID, caller: Caller) -> Dataset:
    dataset = await get_dataset(session, dataset_id)
    if not access.may_write(caller, dataset.department_id):
        raise Forbidden(f"dataset {dataset.code} is changed only by its department or an administrator")
    return dataset


async def update_dataset(
    session: AsyncSession, dataset: Dataset, body: DatasetUpdate, caller: Caller
) -> Dataset:
    given = body.model_fields_set
    if "department_id" in given and body.department_id != dataset.department_id:
        if body.department_id is None or not caller.admin:
            raise Forbidden("only an administrator hands a dataset to another department")
        await _department(session, body.department_id, _tenant(session))
        dataset.department_id = body.department_id
    for name in ("title", "title_en", "description", "sharing", "conditions", "update_frequency"):
        if name in given:
            value = getattr(body, name)
            if value is None and name in ("title", "sharing", "update_frequency"):
                raise BadRequestData(f"{name} cannot be removed")
            setattr(dataset, name, value)
    _check_sharing(dataset.sharing, dataset.conditions)
    if "fields" in given:
        dataset.fields = _fields(body.fields or [])
    if "entity_types" in given:
        if not body.entity_types:
            raise BadRequestData("a dataset needs at least one entity type")
        await _claim_types(session, dataset, _types(body.entity_types), caller)
    dataset.updated_at = utcnow()
    await session.flush()
    return dataset


async def delete_dataset(session: AsyncSession, dataset: Dataset) -> None:
    await session.execute(delete(SharingRequest).where(SharingRequest.dataset_id == dataset.id))
    await session.execute(delete(DatasetType).where(DatasetType.dataset_id == dataset.id))
    await session.delete(dataset)
    await session.flush()


async def types_of(session: AsyncSession, dataset_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {d: [] for d in dataset_ids}
    if not dataset_ids:
        return found
    rows = await session.execute(
        select(DatasetType.dataset_id, DatasetType.entity_type)
        .where(DatasetType.dataset_id.in_(dataset_ids))
        .order_by(DatasetType.entity_type)
    )
    for dataset_id, entity_type in rows:
        found[dataset_id].append(entity_type)
    return found


async def statistics(session: AsyncSession, dataset_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Statistics]:
    """Live figures of each dataset from the broker: its entities and their last change."""
    if not dataset_ids:
        return {}
    rows = await session.execute(
        select(
            DatasetType.dataset_id,
            func.count(func.distinct(BrokerEntity.entity_id)),
            func.max(BrokerEntity.modified_at),
        )
        .join(
            BrokerEntityType,
            (BrokerEntityType.tenant_code == DatasetType.tenant_code)
            & (BrokerEntityType.type == DatasetType.entity_type),
        )
        .join(
            BrokerEntity,
            (BrokerEntity.tenant_code == BrokerEntityType.tenant_code)
            & (BrokerEntity.entity_id == BrokerEntityType.entity_id),
        )
        .where(DatasetType.dataset_id.in_(dataset_ids))
        .group_by(DatasetType.dataset_id)
    )
    found = {d: Statistics(entity_count=0, last_update=None) for d in dataset_ids}
    for dataset_id, count, last in rows:
        found[dataset_id] = Statistics(entity_count=int(count or 0), last_update=last)
    return found


@dataclass
class Listing:
    datasets: list[Dataset]
    total: int


async def search(
    session: AsyncSession,
    caller: Caller,
    *,
    text: str | None = None,
    sharing: str | None = None,
    department_id: uuid.UUID | None = None,
    entity_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Listing:
    """The entries the caller may see, by code; ``text`` matches code, titles and description."""
    statement = select(Dataset).order_by(Dataset.code)
    if sharing is not None:
        statement = statement.where(Dataset.sharing == sharing)
    if department_id is not None:
        statement = statement.where(Dataset.department_id == department_id)
    if entity_type is not None:
        typed = select(DatasetType.dataset_id).where(DatasetType.entity_type == expand(entity_type))
        statement = statement.where(Dataset.id.in_(typed))
    needle = text.strip().lower() if text else None
    found = []
    for dataset in await session.scalars(statement):
        if not access.may_list(caller, dataset.department_id, dataset.sharing):
            continue
        if needle is not None:
            haystack = " ".join(
                filter(None, (dataset.code, dataset.title, dataset.title_en, dataset.description))
            ).lower()
            if needle not in haystack:
                continue
        found.append(dataset)
    return Listing(found[offset : offset + limit], len(found))


async def show(
    session: AsyncSession, datasets: Sequence[Dataset], caller: Caller, *, with_statistics: bool = True
) -> list[DatasetRead]:
    """Datasets as the caller sees them: owner department, fields with their privacy
    classification (the data models' ``x-personal``), whether the caller may read and write the
    data, and (for those it may read) the live statistics."""
    ids = [d.id for d in datasets]
    types = await types_of(session, ids)
    approved = await access.approved_datasets(session, caller.department_id)
    departments = {
        d.id: d
        for d in await session.scalars(
            select(Department).where(Department.id.in_({d.department_id for d in datasets}))
        )
    }
    readable = {
        d.id for d in datasets if access.may_read(caller, d.department_id, d.sharing, d.id in approved)
    }
    stats = await statistics(session, [i for i in ids if i in readable]) if with_statistics else {}
    shown = []
    for dataset in datasets:
        rules = protection.classified(types[dataset.id], [f["name"] for f in dataset.fields])
        fields = [
            FieldRead(
                **f,
                classification=rules[f["name"]].level if f["name"] in rules else None,
                mask=rules[f["name"]].mask if f["name"] in rules else None,
            )
            for f in dataset.fields
        ]
        department = departments.get(dataset.department_id)
        shown.append(
            DatasetRead(
                id=dataset.id,
                tenant=dataset.tenant_code,
                code=dataset.code,
                title=dataset.title,
                title_en=dataset.title_en,
                description=dataset.description,
                department_id=dataset.department_id,
                department=department.name if department else None,
                department_en=department.name_en if department else None,
                entity_types=types[dataset.id],
                sharing=dataset.sharing,
                conditions=dataset.conditions,
                update_frequency=dataset.update_frequency,
                fields=fields,
                readable=dataset.id in readable,
                writable=access.may_write(caller, dataset.department_id),
                statistics=stats.get(dataset.id),
                created_by=dataset.created_by,
                created_at=dataset.created_at,
                updated_at=dataset.updated_at,
            )
        )
    return shown


# -- sharing requests ---------------------------------------------------------------------------


async def apply(session: AsyncSession, body: SharingRequestCreate, caller: Caller) -> SharingRequest:
    """A department asks for a conditional dataset of another department."""
    applicant = body.department_id or caller.department_id
    if applicant is None:
        raise BadRequestData("a sharing request is made by a department: you belong to none")
    if applicant != caller.department_id and not caller.admin:
        raise Forbidden("a department applies for itself")
    dataset = await readable_dataset(session, body.dataset_id, caller)
    if dataset.sharing != CONDITIONAL:
        raise Conflict(
            f"dataset {dataset.code} is {dataset.sharing}: only conditional datasets take requests"
        )
    if applicant == dataset.department_id:
        raise Conflict(f"department {applicant} owns dataset {dataset.code}")
    if await session.get(Department, applicant) is None:
        raise BadRequestData(f"department {applicant} does not exist")
    starts = body.starts_at or utcnow()
    if body.ends_at <= starts:
        raise BadRequestData("ends_at must be after starts_at")
    names = [f["name"] for f in dataset.fields]
    fields = [expand(name) for name in body.fields]
    unknown = [name for name in fields if names and name not in names]
    if unknown:
        raise BadRequestData(f"not fields of dataset {dataset.code}: {', '.join(unknown)}")
    request = SharingRequest(
        dataset_id=dataset.id,
        applicant_department_id=applicant,
        applicant=caller.name,
        purpose=body.purpose,
        fields=fields,
        starts_at=starts,
        ends_at=body.ends_at,
        status=PENDING,
        created_at=utcnow(),
    )
    session.add(request)
    await session.flush()
    return request


async def list_requests(
    session: AsyncSession,
    caller: Caller,
    *,
    status: str | None = None,
    dataset_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SharingRequest], int]:
    """Requests the caller's department made or received (administrators: all), newest first."""
    statement = select(SharingRequest).join(Dataset, Dataset.id == SharingRequest.dataset_id)
    if not caller.admin:
        if caller.department_id is None:
            return [], 0
        statement = statement.where(
            (SharingRequest.applicant_department_id == caller.department_id)
            | (Dataset.department_id == caller.department_id)
        )
    if status is not None:
        statement = statement.where(SharingRequest.status == status)
    if dataset_id is not None:
        statement = statement.where(SharingRequest.dataset_id == dataset_id)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(SharingRequest.created_at.desc(), SharingRequest.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def get_request(session: AsyncSession, request_id: uuid.UUID, caller: Caller) -> SharingRequest:
    """A request the caller's department made or received (administrators: any); 403 for others."""
    request = (await session.scalars(select(SharingRequest).where(SharingRequest.id == request_id))).first()
    if request is None:
        raise NotFound(f"sharing request {request_id} does not exist")
    dataset = await get_dataset(session, request.dataset_id)
    if not (
        caller.admin
        or access.owns(caller, dataset.department_id)
        or access.owns(caller, request.applicant_department_id)
    ):
        raise Forbidden("a sharing request is seen by the applicant and the owner department")
    return request


async def decide(
    session: AsyncSession, request: SharingRequest, decision: Decision, caller: Caller, *, source: str | None
) -> SharingRequest:
    """The owner department approves or rejects a pending request; each decision goes into the
    audit chain in the same transaction."""
    dataset = await get_dataset(session, request.dataset_id)
    if not access.may_write(caller, dataset.department_id):
        raise Forbidden(f"requests for dataset {dataset.code} are decided by its department")
    if request.status != PENDING:
        raise Conflict(f"the request was {request.status} already")
    now = utcnow()
    expires = None
    if decision.decision == "approve":
        expires = min(request.ends_at, decision.expires_at) if decision.expires_at else request.ends_at
        if expires <= now:
            raise BadRequestData("the approval would have ended already")
    status = APPROVED if decision.decision == "approve" else REJECTED
    await audit.append(  # the chain's head first (its lock order), then the request row
        session,
        f"catalog.sharing.{status}",
        actor=caller.name,
        tenant_code=_tenant(session),
        source=source,
        detail={
            "request": str(request.id),
            "dataset": dataset.code,
            "applicant_department": str(request.applicant_department_id),
            "expires_at": expires.isoformat() if expires else None,
            "note": decision.note,
        },
    )
    request.status = status
    request.decided_by = caller.name
    request.decided_at = now
    request.decision_note = decision.note
    request.expires_at = expires
    await session.flush()
    return request


async def revoke(
    session: AsyncSession, request: SharingRequest, body: Revocation, caller: Caller, *, source: str | None
) -> SharingRequest:
    """The owner department ends an approval in force now (a purpose that lapsed, a misuse): the
    applicant's reads stop with this request, and so do the notifications of its subscriptions.
    Written into the audit chain in the same transaction."""
    dataset = await get_dataset(session, request.dataset_id)
    if not access.may_write(caller, dataset.department_id):
        raise Forbidden(f"approvals of dataset {dataset.code} are revoked by its department")
    now = utcnow()
    if request.status != APPROVED or (request.expires_at is not None and request.expires_at <= now):
        raise Conflict(f"the request is not an approval in force (it is {request.status})")
    await audit.append(
        session,
        "catalog.sharing.revoked",
        actor=caller.name,
        tenant_code=_tenant(session),
        source=source,
        detail={
            "request": str(request.id),
            "dataset": dataset.code,
            "applicant_department": str(request.applicant_department_id),
            "note": body.note,
        },
    )
    request.status = REVOKED
    request.decision_note = body.note or request.decision_note
    request.expires_at = now
    await session.flush()
    return request


async def expire_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Mark approvals whose time is up as expired (every tenant; the session is unscoped), each
    with its audit record. Access already ends at ``expires_at`` without this: it is the record."""
    moment = now or utcnow()
    due = list(
        await session.scalars(
            select(SharingRequest).where(
                SharingRequest.status == APPROVED, SharingRequest.expires_at <= moment
            )
        )
    )
    for request in due:
        await audit.append(
            session,
            "catalog.sharing.expired",
            actor="catalog",
            tenant_code=request.tenant_code,
            detail={"request": str(request.id), "dataset_id": str(request.dataset_id)},
        )
        request.status = EXPIRED
    await session.flush()
    return len(due)
