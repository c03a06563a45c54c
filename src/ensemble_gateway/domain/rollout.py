"""Versions of a service: registration beside the serving one, approval, traffic, shadows, promotion.

Pure functions over a :class:`~.models.Service`: each returns the service as it is after the
change, with the change appended to its history, or raises :class:`VersionError` saying what is
wrong and what to do. The catalog adapter stores the result; nothing here reads or writes AWS.

The rules, in one place:

- Applying an entry whose ``version`` is new adds that version beside the others; the ones serving
  keep serving. It is ``pending_approval`` unless the entry says ``"approval": "none"``. The first
  version of a service is approved when applied unless the entry says ``"approval": "required"``.
- Only approved versions get traffic. A split an entry asks for that names a version not yet
  approved waits (``requested``) and applies when the last of them is approved.
- ``promote`` gives one version all traffic and retires the versions that lose theirs; ``rollback``
  returns to the split before the last change (bringing retired versions back).
- Shadows may be approved or pending versions (evaluating a candidate before approving it is what
  shadows are for), never rejected or retired ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .errors import GatewayError
from .models import Assignment, Rollout, Service, VersionEvent, VersionRecord, VersionStatus

#: The draw is an integer in [0, BUCKETS): weights are percentages, so one bucket is 0.01 point.
BUCKETS = 10_000
#: How many earlier splits ``rollback`` can go back through.
PREVIOUS_SPLITS_KEPT = 20
#: Who a change made by applying a catalog entry is recorded as.
CATALOG_ACTOR = "catalog"

PENDING = VersionStatus.PENDING_APPROVAL
APPROVED = VersionStatus.APPROVED
REJECTED = VersionStatus.REJECTED
RETIRED = VersionStatus.RETIRED


class VersionError(GatewayError):
    """A version change that cannot be made as asked (the message says why and what to do)."""

    http_status = 409
    code = "VersionConflict"


class NoServingVersionError(GatewayError):
    """The service has no approved version with traffic: nothing may serve its predictions."""

    http_status = 409
    code = "NoServingVersion"


def version_order(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of a version label: numeric parts as numbers (``1.10.0`` after ``1.9.0``)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-_]", version))


def _ordered(split: Mapping[str, int]) -> dict[str, int]:
    return {version: split[version] for version in sorted(split, key=version_order)}


def primary_version(rollout: Rollout) -> str | None:
    """The version with the most traffic (ties: the newest); None when nothing serves."""
    if not rollout.traffic:
        return None
    return max(rollout.traffic, key=lambda v: (rollout.traffic[v], version_order(v)))


# --- applying a catalog entry ---------------------------------------------------------------


def apply_entry(existing: Service | None, entry: Service, now: datetime) -> Service:
    """The service as stored after applying ``entry`` over ``existing`` (None: a new service).

    ``entry``'s own ``model`` / ``ensemble`` (its state machine ARN already set) are those of
    ``entry.version``. The service-wide fields (description, content types, size, tasks, active)
    come from the entry; the top-level ``version``, ``model`` and ``ensemble`` stay those of the
    primary version.

    Raises
    ------
    VersionError
        The entry changes the kind of the service, names an endpoint another version serves
        from, or asks for a split or shadows that cannot apply.
    """
    if entry.rollout is not None:
        raise VersionError(
            f"service '{entry.name}': 'rollout' is kept by the gateway; set 'traffic', 'sticky_key' "
            "and 'shadow' in the entry, or use `services traffic|shadow|promote`"
        )
    if existing is not None and existing.kind != entry.kind:
        raise VersionError(
            f"service '{entry.name}' is a {existing.kind}; an entry cannot make it a {entry.kind} "
            "(delete the service first, or choose another name)"
        )
    rollout = (
        existing.rollout.model_copy(deep=True)
        if existing is not None and existing.rollout is not None
        else _legacy_rollout(existing)
    )
    version = entry.version
    record = rollout.versions.get(version)
    if record is None:
        if rollout.versions:
            status = APPROVED if entry.approval == "none" else PENDING
        else:
            status = PENDING if entry.approval == "required" else APPROVED
        _check_own_endpoint(rollout, entry)
        rollout.versions[version] = VersionRecord(
            version=version,
            status=status,
            registered_at=now,
            description=entry.description,
            model=entry.model,
            ensemble=entry.ensemble,
            decided_by=CATALOG_ACTOR if status is APPROVED else None,
            decided_at=now if status is APPROVED else None,
            note=_auto_approval_note(entry) if status is APPROVED else None,
        )
        rollout.history.append(VersionEvent(at=now, action="registered", by=CATALOG_ACTOR, version=version))
        if status is APPROVED:
            rollout.history.append(
                VersionEvent(
                    at=now,
                    action="approved",
                    by=CATALOG_ACTOR,
                    version=version,
                    note=rollout.versions[version].note,
                )
            )
            if not rollout.traffic and entry.traffic is None:
                # The first version to be approved serves: a service is never left without traffic
                # because nobody asked for a split.
                _set_split(rollout, {version: 100}, None, now, CATALOG_ACTOR, action="traffic", remember=False)
    else:
        _check_own_endpoint(rollout, entry)
        rollout.versions[version] = record.model_copy(
            update={"description": entry.description, "model": entry.model, "ensemble": entry.ensemble}
        )
        if record.model != entry.model or record.ensemble != entry.ensemble or record.description != entry.description:
            rollout.history.append(VersionEvent(at=now, action="updated", by=CATALOG_ACTOR, version=version))
    if entry.sticky_key is not None and entry.traffic is None:
        raise VersionError(f"service '{entry.name}': 'sticky_key' applies to a 'traffic' split; give one")
    if entry.traffic is not None:
        split = _validated_split(rollout, entry.traffic, entry.name, require_approved=False)
        if all(rollout.versions[v].status is APPROVED for v in split):
            if split != rollout.traffic or entry.sticky_key != rollout.sticky_key:
                _set_split(rollout, split, entry.sticky_key, now, CATALOG_ACTOR, action="traffic")
            rollout.requested = None
            rollout.requested_sticky_key = None
        else:
            rollout.requested = split
            rollout.requested_sticky_key = entry.sticky_key
    if entry.shadow is not None:
        shadows = _validated_shadows(rollout, entry.shadow, entry.name)
        if shadows != rollout.shadow:
            rollout.shadow = shadows
            rollout.history.append(VersionEvent(at=now, action="shadow", by=CATALOG_ACTOR, shadow=shadows))
    return _with_rollout(entry, rollout)


def _legacy_rollout(existing: Service | None) -> Rollout:
    """The rollout of an entry stored before versions existed (or none for a new service)."""
    if existing is None:
        return Rollout()
    return Rollout(versions=dict(existing.versions()), traffic={existing.version: 100})


def _auto_approval_note(entry: Service) -> str:
    if entry.approval == "none":
        return 'approved when applied (the entry says "approval": "none")'
    return "the first version of the service, approved when applied"


def _check_own_endpoint(rollout: Rollout, entry: Service) -> None:
    """Two versions never share one endpoint: each is served (and deployed) on its own."""
    if entry.model is None:
        return
    for other in rollout.versions.values():
        same = other.model is not None and other.model.endpoint_name == entry.model.endpoint_name
        if other.version != entry.version and same:
            raise VersionError(
                f"service '{entry.name}' version {entry.version} names endpoint "
                f"'{entry.model.endpoint_name}', which version {other.version} serves from: give the new "
                "version its own endpoint_name (versions run side by side)"
            )


def _with_rollout(entry: Service, rollout: Rollout) -> Service:
    """``entry`` stored with ``rollout``: its top-level version is the primary one."""
    primary = primary_version(rollout) or entry.version
    if primary not in rollout.versions:
        primary = entry.version
    record = rollout.versions[primary]
    return entry.model_copy(
        update={"rollout": rollout, "version": primary, "model": record.model, "ensemble": record.ensemble}
    )


def _validated_split(
    rollout: Rollout, split: Mapping[str, int], service: str, *, require_approved: bool
) -> dict[str, int]:
    if not split:
        raise VersionError(f"service '{service}': a traffic split names at least one version")
    for version, weight in split.items():
        if version not in rollout.versions:
            known = ", ".join(sorted(rollout.versions, key=version_order)) or "none"
            raise VersionError(f"service '{service}' has no version '{version}' (its versions: {known})")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise VersionError(f"service '{service}': the weight of {version} must be a whole number from 0 to 100")
        status = rollout.versions[version].status
        if weight and status in (REJECTED, RETIRED):
            raise VersionError(f"service '{service}' version {version} is {status.value}: it cannot get traffic")
        if weight and require_approved and status is not APPROVED:
            raise VersionError(
                f"service '{service}' version {version} is {status.value}: "
                f"approve it first (`services approve {service} {version} --by NAME`)"
            )
    total = sum(split.values())
    if total != 100:
        raise VersionError(f"service '{service}': the weights add up to {total}; they must add up to 100")
    return _ordered({version: weight for version, weight in split.items() if weight})


def _validated_shadows(rollout: Rollout, versions: list[str], service: str) -> list[str]:
    shadows: list[str] = []
    for version in versions:
        record = rollout.versions.get(version)
        if record is None:
            known = ", ".join(sorted(rollout.versions, key=version_order)) or "none"
            raise VersionError(f"service '{service}' has no version '{version}' (its versions: {known})")
        if record.status in (REJECTED, RETIRED):
            raise VersionError(f"service '{service}' version {version} is {record.status.value}: it cannot shadow")
        if version not in shadows:
            shadows.append(version)
    return sorted(shadows, key=version_order)


def _set_split(
    rollout: Rollout,
    split: dict[str, int],
    sticky_key: str | None,
    now: datetime,
    by: str,
    *,
    action: str,
    note: str | None = None,
    remember: bool = True,
    version: str | None = None,
) -> None:
    if remember and rollout.traffic:
        rollout.previous.insert(0, {"traffic": dict(rollout.traffic), "sticky_key": rollout.sticky_key})
        del rollout.previous[PREVIOUS_SPLITS_KEPT:]
    rollout.traffic = _ordered(split)
    rollout.sticky_key = sticky_key
    rollout.history.append(
        VersionEvent(
            at=now,
            action=action,  # type: ignore[arg-type]
            by=by,
            version=version,
            note=note,
            traffic=dict(rollout.traffic),
            sticky_key=sticky_key,
        )
    )


def _rollout(service: Service) -> Rollout:
    if service.rollout is not None:
        return service.rollout.model_copy(deep=True)
    return _legacy_rollout(service)


def _record(rollout: Rollout, service: Service, version: str) -> VersionRecord:
    record = rollout.versions.get(version)
    if record is None:
        known = ", ".join(sorted(rollout.versions, key=version_order)) or "none"
        raise VersionError(f"service '{service.name}' has no version '{version}' (its versions: {known})")
    return record


def _actor(by: str) -> str:
    name = by.strip()
    if not name:
        raise VersionError("say who decides: --by NAME")
    if len(name) > 128:
        raise VersionError("--by is at most 128 characters")
    return name


# --- operator decisions ------------------------------------------------------------------------


def approve(service: Service, version: str, *, by: str, now: datetime, note: str | None = None) -> Service:
    """Approve a pending version; a split an entry asked for applies once its versions are approved."""
    actor = _actor(by)
    rollout = _rollout(service)
    record = _record(rollout, service, version)
    if record.status is not PENDING:
        raise VersionError(
            f"service '{service.name}' version {version} is {record.status.value}: only a version pending "
            "approval can be approved"
        )
    rollout.versions[version] = record.model_copy(
        update={"status": APPROVED, "decided_by": actor, "decided_at": now, "note": note}
    )
    rollout.history.append(VersionEvent(at=now, action="approved", by=actor, version=version, note=note))
    if not rollout.traffic and rollout.requested is None:
        # Nothing served yet (the first version needed approval): the approved one serves.
        _set_split(rollout, {version: 100}, None, now, actor, action="traffic", remember=False)
    requested = rollout.requested
    if requested is not None and all(rollout.versions[v].status is APPROVED for v in requested):
        _set_split(
            rollout,
            dict(requested),
            rollout.requested_sticky_key,
            now,
            actor,
            action="traffic",
            note="the split the catalog entry asked for, now that its versions are approved",
        )
        rollout.requested = None
        rollout.requested_sticky_key = None
    return _with_rollout(service, rollout)


def reject(service: Service, version: str, *, by: str, now: datetime, note: str | None = None) -> Service:
    """Reject a version that is pending, or approved and serving no traffic; it stops shadowing."""
    actor = _actor(by)
    rollout = _rollout(service)
    record = _record(rollout, service, version)
    if record.status not in (PENDING, APPROVED):
        raise VersionError(f"service '{service.name}' version {version} is already {record.status.value}")
    if rollout.traffic.get(version):
        raise VersionError(
            f"service '{service.name}' version {version} serves {rollout.traffic[version]}% of traffic: move it "
            f"first (`services traffic` or `services promote`), then reject it"
        )
    rollout.versions[version] = record.model_copy(
        update={"status": REJECTED, "decided_by": actor, "decided_at": now, "note": note}
    )
    rollout.history.append(VersionEvent(at=now, action="rejected", by=actor, version=version, note=note))
    if version in rollout.shadow:
        rollout.shadow = [v for v in rollout.shadow if v != version]
        rollout.history.append(VersionEvent(at=now, action="shadow", by=actor, shadow=list(rollout.shadow)))
    if rollout.requested is not None and version in rollout.requested:
        # The split asked for can never apply now.
        rollout.requested = None
        rollout.requested_sticky_key = None
    return _with_rollout(service, rollout)


def set_traffic(
    service: Service, split: Mapping[str, int], *, by: str, now: datetime, sticky_key: str | None = None
) -> Service:
    """Split the traffic between approved versions (weights summing to 100)."""
    actor = _actor(by)
    rollout = _rollout(service)
    ordered = _validated_split(rollout, split, service.name, require_approved=True)
    if sticky_key is not None:
        # The same rule as a catalog entry's (validated there by the model).
        Service.model_validate({**service.model_dump(exclude={"rollout"}), "sticky_key": sticky_key})
    _set_split(rollout, ordered, sticky_key, now, actor, action="traffic")
    rollout.requested = None
    rollout.requested_sticky_key = None
    return _with_rollout(service, rollout)


def set_shadows(service: Service, versions: list[str], *, by: str, now: datetime) -> Service:
    """Send a copy of every input to ``versions`` as well (empty: no shadows)."""
    actor = _actor(by)
    rollout = _rollout(service)
    rollout.shadow = _validated_shadows(rollout, versions, service.name)
    rollout.history.append(VersionEvent(at=now, action="shadow", by=actor, shadow=list(rollout.shadow)))
    return _with_rollout(service, rollout)


def promote(service: Service, version: str, *, by: str, now: datetime, note: str | None = None) -> Service:
    """Give ``version`` all traffic; the versions that lose theirs are retired. It stops shadowing."""
    actor = _actor(by)
    rollout = _rollout(service)
    record = _record(rollout, service, version)
    if record.status is not APPROVED:
        hint = (
            f": approve it first (`services approve {service.name} {version} --by NAME`)"
            if record.status is PENDING
            else ""
        )
        raise VersionError(f"service '{service.name}' version {version} is {record.status.value}{hint}")
    if rollout.traffic == {version: 100}:
        raise VersionError(f"service '{service.name}' version {version} already has all traffic")
    losing = [v for v in rollout.traffic if v != version]
    _set_split(rollout, {version: 100}, rollout.sticky_key, now, actor, action="promoted", note=note, version=version)
    for old in losing:
        rollout.versions[old] = rollout.versions[old].model_copy(update={"status": RETIRED})
        rollout.history.append(
            VersionEvent(at=now, action="retired", by=actor, version=old, note=f"{version} was promoted")
        )
    if version in rollout.shadow:
        rollout.shadow = [v for v in rollout.shadow if v != version]
        rollout.history.append(VersionEvent(at=now, action="shadow", by=actor, shadow=list(rollout.shadow)))
    rollout.requested = None
    rollout.requested_sticky_key = None
    return _with_rollout(service, rollout)


def rollback(service: Service, *, by: str, now: datetime, note: str | None = None) -> Service:
    """Return to the split before the last change; retired versions of that split serve again."""
    actor = _actor(by)
    rollout = _rollout(service)
    if not rollout.previous:
        raise VersionError(f"service '{service.name}' has no earlier split to return to")
    earlier = rollout.previous[0]
    split: dict[str, int] = dict(earlier["traffic"])
    for version in split:
        record = rollout.versions.get(version)
        if record is None or record.status is REJECTED:
            state = "rejected" if record is not None else "gone"
            raise VersionError(
                f"service '{service.name}': the earlier split gives traffic to {version}, which is {state}; "
                "set a split with `services traffic`"
            )
    rollout.previous.pop(0)
    for version in split:
        if rollout.versions[version].status is RETIRED:
            rollout.versions[version] = rollout.versions[version].model_copy(update={"status": APPROVED})
    _set_split(rollout, split, earlier.get("sticky_key"), now, actor, action="rolled_back", note=note, remember=False)
    rollout.requested = None
    rollout.requested_sticky_key = None
    return _with_rollout(service, rollout)


# --- routing a prediction ----------------------------------------------------------------------


@dataclass(frozen=True)
class Drawn:
    """The version a prediction goes to, and how it was chosen (None: the only version)."""

    version: str
    assignment: Assignment | None


def bucket_of(*parts: str) -> int:
    """A uniform, stable draw in ``[0, BUCKETS)`` from ``parts`` (SHA-256: the same on every host)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def pick(split: Mapping[str, int], bucket: int) -> str:
    """The version whose share of ``[0, BUCKETS)`` holds ``bucket`` (shares in version order)."""
    edge = 0
    chosen = None
    for version, weight in _ordered(split).items():
        chosen = version
        edge += weight * (BUCKETS // 100)
        if bucket < edge:
            return version
    assert chosen is not None
    return chosen


def draw(service: Service, *, metadata: Mapping[str, str], draw_id: str) -> Drawn:
    """Choose the version that serves one prediction of ``service``.

    With a sticky key whose field the metadata holds, the draw is a hash of the service name and
    that value: the same version every time for that value, the split matching the weights over
    many values. Otherwise it is a hash of ``draw_id`` (the prediction's ID): uniform across
    predictions, and the same again when a prediction is dispatched a second time.

    Raises
    ------
    NoServingVersionError
        No version is approved with traffic.
    """
    split = service.serving_traffic()
    if not split:
        pending = [v for v, r in service.versions().items() if r.status is PENDING]
        hint = f": approve one (`services approve {service.name} {pending[0]} --by NAME`)" if pending else ""
        raise NoServingVersionError(f"service '{service.name}' has no approved version serving yet{hint}")
    if len(split) == 1:
        return Drawn(next(iter(split)), None)
    key = service.sticky()
    value = metadata.get(key) if key else None
    if key is not None and value is not None:
        bucket = bucket_of(service.name, value)
        return Drawn(pick(split, bucket), Assignment(by="sticky", key=key, bucket=bucket, traffic=dict(split)))
    bucket = bucket_of(service.name, draw_id)
    return Drawn(pick(split, bucket), Assignment(by="random", key=key, bucket=bucket, traffic=dict(split)))


def shadows_of(service: Service, served: str) -> list[str]:
    """The versions a prediction served by ``served`` is also sent to."""
    return [v for v in service.shadow_versions() if v != served and v in service.versions()]
