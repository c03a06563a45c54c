"""The operator's version commands: ``services approve|reject|traffic|shadow|promote|rollback|history|compare``.

Each change reads the service's catalog entry, applies one operation of ``domain/rollout.py``
(which records who did what, when, in the entry's history) and writes the entry back with a
conditional write: if another operator changed the entry in between, the change is made again on
what they wrote, so neither change is lost (:meth:`ServiceVersions.change`).

``compare`` reads the service's prediction records (an admin scan, see
``DynamoPredictionStore.scan_service``) and the outputs they point at, and computes per version
what ``domain/agreement.py`` defines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .domain import rollout
from .domain.agreement import DEFAULT_TOLERANCE, ShadowFigures, VersionFigures, agree, decode_output
from .domain.errors import GatewayError
from .domain.models import Prediction, PredictionStatus, Service, ShadowOutcome, VersionEvent, utcnow
from .domain.rollout import version_order

#: How many times a change is made again when another operator's write came in between.
WRITE_ATTEMPTS = 5
#: How many records ``compare`` reads by default.
COMPARE_LIMIT = 1000


class ConcurrentChangeError(GatewayError):
    """The entry kept changing under this change: every conditional write lost the race."""

    http_status = 409
    code = "ConcurrentChange"


class VersionCatalog(Protocol):
    """What the version commands need of the service catalog (DynamoServiceCatalog, FakeCatalog)."""

    def get(self, name: str) -> Service | None: ...

    def put_if_unchanged(self, service: Service, expected: Service | None) -> bool:
        """Write ``service`` only if the entry is still ``expected``; whether it was written."""
        ...


class ServiceRecords(Protocol):
    """What ``compare`` needs of the predictions table (DynamoPredictionStore, FakePredictionStore)."""

    def scan_service(
        self, service: str, *, since: datetime | None = None, limit: int = COMPARE_LIMIT, shadows: bool = False
    ) -> list[Prediction]: ...


@dataclass(frozen=True)
class VersionChange:
    """A change made: the entry as written, and the history events the change appended."""

    service: Service
    events: list[VersionEvent]


class ServiceVersions:
    """The version commands against one catalog.

    Parameters
    ----------
    catalog
        The service catalog (its conditional write is what keeps concurrent changes).
    clock
        The time changes are recorded at.
    attempts
        How many times a change is tried before :class:`ConcurrentChangeError`.
    """

    def __init__(
        self, catalog: VersionCatalog, *, clock: Callable[[], datetime] = utcnow, attempts: int = WRITE_ATTEMPTS
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.attempts = attempts

    def service(self, name: str) -> Service:
        """The catalog entry of ``name``.

        Raises
        ------
        LookupError
            No entry of that name.
        """
        entry = self.catalog.get(name)
        if entry is None:
            raise LookupError(f"no service '{name}' in the catalog")
        return entry

    def change(self, name: str, operation: Callable[[Service, datetime], Service]) -> VersionChange:
        """Apply ``operation`` to the entry of ``name`` and write it back, unless someone else did first.

        Read, apply, write only if the entry is still as read; when it is not, read it again and
        apply the operation to what the other operator wrote (which may now refuse it: their
        change may have made this one wrong, e.g. the version was rejected meanwhile).

        Raises
        ------
        LookupError
            No entry of that name.
        VersionError
            The operation refuses the change (see ``domain/rollout.py``).
        ConcurrentChangeError
            The entry changed under every one of ``attempts`` tries.
        """
        for _ in range(self.attempts):
            current = self.service(name)
            changed = operation(current, self.clock())
            if self.catalog.put_if_unchanged(changed, current):
                return VersionChange(changed, _new_events(current, changed))
        raise ConcurrentChangeError(
            f"service '{name}' changed {self.attempts} times while this change was being made "
            "(other operators or `services apply`): run the command again"
        )

    def approve(self, name: str, version: str, *, by: str, note: str | None = None) -> VersionChange:
        """``services approve``: a pending version may serve (see :func:`rollout.approve`)."""
        return self.change(name, lambda s, now: rollout.approve(s, version, by=by, now=now, note=note))

    def reject(self, name: str, version: str, *, by: str, note: str | None = None) -> VersionChange:
        """``services reject``: a version never serves (refused for one that has traffic)."""
        return self.change(name, lambda s, now: rollout.reject(s, version, by=by, now=now, note=note))

    def set_traffic(
        self, name: str, split: Mapping[str, int], *, by: str, sticky_key: str | None = None, keep_sticky: bool = True
    ) -> VersionChange:
        """``services traffic``: split the traffic between approved versions.

        Without ``sticky_key`` the split keeps the service's current sticky key when
        ``keep_sticky`` (changing the weights of a sticky canary must not reshuffle every key's
        version), and drops it otherwise.
        """

        def operation(service: Service, now: datetime) -> Service:
            key = sticky_key if sticky_key is not None else (service.sticky() if keep_sticky else None)
            return rollout.set_traffic(service, split, by=by, now=now, sticky_key=key)

        return self.change(name, operation)

    def set_shadows(self, name: str, versions: Sequence[str], *, by: str) -> VersionChange:
        """``services shadow``: the versions that also get every input (empty: none)."""
        return self.change(name, lambda s, now: rollout.set_shadows(s, list(versions), by=by, now=now))

    def promote(self, name: str, version: str, *, by: str, note: str | None = None) -> VersionChange:
        """``services promote``: all traffic to ``version``; the versions losing theirs retire."""
        return self.change(name, lambda s, now: rollout.promote(s, version, by=by, now=now, note=note))

    def rollback(self, name: str, *, by: str, note: str | None = None) -> VersionChange:
        """``services rollback``: back to the split before the last change."""
        return self.change(name, lambda s, now: rollout.rollback(s, by=by, now=now, note=note))


def _new_events(before: Service, after: Service) -> list[VersionEvent]:
    known = len(before.rollout.history) if before.rollout is not None else 0
    return list(after.rollout.history[known:]) if after.rollout is not None else []


# --- who is asking ---------------------------------------------------------------------------


def local_actor() -> str:
    """Who a change on the local runtime is recorded as: ``$USER``, or "local"."""
    return os.environ.get("USER") or os.environ.get("USERNAME") or "local"


def aws_actor(sts: Any) -> str:
    """Who a change on AWS is recorded as: the caller's ARN (one ``sts:GetCallerIdentity``, which
    needs no permission), or :func:`local_actor` when it cannot be had."""
    try:
        return str(sts.get_caller_identity()["Arn"])
    except Exception:  # no credentials, no network: the change is still worth recording
        return local_actor()


# --- documents (JSON) ------------------------------------------------------------------------


def rollout_document(service: Service) -> dict[str, Any]:
    """A service's versions and routing, as JSON: what every version command prints with ``--json``."""
    state = service.rollout
    versions = service.versions()
    return {
        "name": service.name,
        "kind": service.kind,
        "version": service.version,
        "traffic": service.serving_traffic(),
        "sticky_key": service.sticky(),
        "shadow": service.shadow_versions(),
        "requested": state.requested if state is not None else None,
        "requested_sticky_key": state.requested_sticky_key if state is not None else None,
        "versions": [
            {
                "version": record.version,
                "status": record.status.value,
                "registered_at": record.registered_at.isoformat(),
                "decided_by": record.decided_by,
                "decided_at": record.decided_at.isoformat() if record.decided_at else None,
                "note": record.note,
                "endpoint": record.model.endpoint_name if record.model is not None else None,
                "state_machine_arn": record.ensemble.state_machine_arn if record.ensemble is not None else None,
            }
            for record in sorted(versions.values(), key=lambda r: version_order(r.version))
        ],
    }


def event_document(event: VersionEvent) -> dict[str, Any]:
    """One history event as JSON (every field, null when unset)."""
    return event.model_dump(mode="json")


def change_document(change: VersionChange) -> dict[str, Any]:
    """What a version command did, as JSON: the service now and the events it appended."""
    return {**rollout_document(change.service), "events": [event_document(e) for e in change.events]}


def history_document(service: Service) -> dict[str, Any]:
    """``services history --json``: the versions and every event, oldest first."""
    history = service.rollout.history if service.rollout is not None else []
    return {**rollout_document(service), "history": [event_document(e) for e in history]}


# --- compare ---------------------------------------------------------------------------------


#: Reads an output by its URI: its bytes, or None when it is gone.
OutputReader = Callable[[str], "bytes | None"]


@dataclass
class Comparison:
    """``services compare``: each version's figures and each shadow's agreement."""

    service: str
    records: int
    since: datetime | None
    limit: int
    tolerance: float
    traffic: dict[str, int]
    shadow: list[str]
    versions: list[VersionFigures] = field(default_factory=list)
    shadows: list[ShadowFigures] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The comparison as JSON."""
        return {
            "service": self.service,
            "records": self.records,
            "since": self.since.isoformat() if self.since else None,
            "limit": self.limit,
            "tolerance": self.tolerance,
            "traffic": self.traffic,
            "shadow": self.shadow,
            "versions": [figures.document() for figures in self.versions],
            "shadows": [figures.document() for figures in self.shadows],
        }


def version_label(version: str | None) -> str:
    """A version as recorded on a record or a shadow outcome, without the real-time endpoint's
    variant (``1.0.0/AllTraffic``: a version label has no ``/``)."""
    return (version or "unknown").split("/", 1)[0]


def served_version(prediction: Prediction) -> str:
    """The version that served a record (its ``model.version``, see :func:`version_label`)."""
    return version_label(prediction.model.version)


def compare(
    service: Service,
    records: ServiceRecords,
    read: OutputReader,
    *,
    since: datetime | None = None,
    limit: int = COMPARE_LIMIT,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Comparison:
    """``services compare``: per version, from the service's records.

    Per version that served (``model.version`` of the records of ``service``, top-level
    predictions and ensemble steps alike, shadow copies left out): predictions, failures and the
    p50/p95 latency (:class:`~.domain.agreement.VersionFigures`). Per shadow version and version it
    shadowed: how it answered the same inputs, from the ``shadow_outcomes`` kept on the records
    it shadowed, and how often its output agrees with the served one
    (:class:`~.domain.agreement.ShadowFigures`; outputs read inline or from their URI).

    Parameters
    ----------
    service
        The catalog entry (for its versions' order and current routing).
    records
        The predictions table.
    read
        Reads an output URI (``s3://...``): the bytes, or None when the object is gone.
    since, limit
        Which records (see ``scan_service``).
    tolerance
        For numbers (see :func:`~.domain.agreement.numbers_agree`).
    """
    found = records.scan_service(service.name, since=since, limit=limit)
    versions: dict[str, VersionFigures] = {}
    shadows: dict[tuple[str, str], ShadowFigures] = {}
    for prediction in found:
        if prediction.is_shadow:
            continue
        served = served_version(prediction)
        versions.setdefault(served, VersionFigures(served)).add(
            prediction.status, prediction.started_at, prediction.finished_at
        )
        if not prediction.shadow_outcomes:
            continue
        primary = _primary_output(prediction, read)
        for outcome in prediction.shadow_outcomes.values():
            shadow = version_label(outcome.version)
            figures = shadows.setdefault((shadow, served), ShadowFigures(shadow, served))
            agreed: bool | None = None
            if outcome.status is PredictionStatus.COMPLETED and prediction.status is PredictionStatus.COMPLETED:
                other = _shadow_output(outcome, read)
                if primary is _UNREADABLE or other is _UNREADABLE:
                    figures.unreadable += 1
                else:
                    agreed = agree(primary, other, tolerance)
            figures.add(outcome.status, outcome.started_at, outcome.finished_at, agreed)

    return Comparison(
        service=service.name,
        records=len(found),
        since=since,
        limit=limit,
        tolerance=tolerance,
        traffic=service.serving_traffic(),
        shadow=service.shadow_versions(),
        versions=sorted(versions.values(), key=lambda f: version_order(f.version)),
        shadows=sorted(shadows.values(), key=lambda f: (version_order(f.version), version_order(f.served))),
    )


# An output that could not be read (no URI, or the object is gone): not compared.
_UNREADABLE: Any = object()


def _primary_output(prediction: Prediction, read: OutputReader) -> Any:
    if prediction.status is not PredictionStatus.COMPLETED or not prediction.output_uri:
        return _UNREADABLE
    body = read(prediction.output_uri)
    return _UNREADABLE if body is None else decode_output(body, prediction.output_content_type)


def _shadow_output(outcome: ShadowOutcome, read: OutputReader) -> Any:
    if outcome.inline:
        return outcome.output
    if not outcome.output_uri:
        return _UNREADABLE
    body = read(outcome.output_uri)
    return _UNREADABLE if body is None else decode_output(body, outcome.content_type)


def s3_reader(s3: Any) -> OutputReader:
    """An :data:`OutputReader` of S3 URIs through a boto3 S3 client, each object read once.

    A missing object (deleted by the bucket's lifecycle rule, say) reads as None.
    """
    from .adapters.aws import error_code
    from .adapters.s3 import split_uri

    cache: dict[str, bytes | None] = {}

    def read(uri: str) -> bytes | None:
        if uri not in cache:
            try:
                bucket, key = split_uri(uri)
                cache[uri] = bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except ValueError:
                cache[uri] = None  # not an s3:// URI: nothing this reader can read
            except Exception as error:
                if error_code(error) not in ("NoSuchKey", "404", "NoSuchBucket"):
                    raise
                cache[uri] = None
        return cache[uri]

    return read
