"""Comparing versions of a service: whether two outputs agree, and the figures ``services compare`` prints.

Pure: the caller reads the records and the outputs; nothing here reads AWS.

Two outputs *agree* when:

- both are JSON (see :func:`decode_output`) and their values agree, recursively:
  labels (strings, booleans, integers, ``null``) exactly; numbers of which at least one is a
  float within the tolerance (:func:`numbers_agree`); objects with the same keys and agreeing
  values; arrays of the same length with agreeing items, in order;
- or neither is JSON and their bytes are the same, byte for byte.

A JSON output never agrees with one that is not, and a boolean never agrees with a number (JSON
tells ``true`` from ``1``; Python's ``bool`` is an ``int``, so it is checked first).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .media_types import media_type
from .models import PredictionStatus

#: The default tolerance for numbers: relative to the larger of the two, or absolute (near zero).
DEFAULT_TOLERANCE = 1e-6


def is_json_type(content_type: str | None) -> bool:
    """Whether ``content_type`` says JSON (``application/json`` or a ``+json`` type); None: JSON,
    the gateway's default for outputs."""
    if content_type is None:
        return True
    kind = media_type(content_type)
    return kind == "application/json" or kind.endswith("+json")


def decode_output(body: bytes, content_type: str | None) -> Any:
    """What an output is, for comparing: its JSON value, or its bytes.

    The JSON value when ``content_type`` says JSON and the body parses as JSON (UTF-8); the body
    itself otherwise, which then only agrees with the same bytes. ``bytes`` is never a JSON value,
    so the two cannot be mistaken for each other.
    """
    if is_json_type(content_type):
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass  # labelled JSON but not JSON: compared as bytes
    return bytes(body)


def numbers_agree(first: float, second: float, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether two numbers agree within ``tolerance``.

    ``|a - b| <= tolerance * max(|a|, |b|)`` or ``|a - b| <= tolerance`` (``math.isclose`` with
    both tolerances the same): relative for large values, absolute near zero, where a relative
    tolerance alone would call 1e-12 and 0 different. NaN agrees with NaN (the same answer) and
    an infinity with itself.
    """
    if math.isnan(first) or math.isnan(second):
        return math.isnan(first) and math.isnan(second)
    return math.isclose(first, second, rel_tol=tolerance, abs_tol=tolerance)


def agree(first: Any, second: Any, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether two decoded outputs (:func:`decode_output`, or inline JSON values) agree.

    Parameters
    ----------
    first, second
        JSON values (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``) or
        ``bytes`` (an output that is not JSON).
    tolerance
        For numbers of which at least one is a float (see :func:`numbers_agree`); 0: exactly.
    """
    if isinstance(first, bytes | bytearray) or isinstance(second, bytes | bytearray):
        return isinstance(first, bytes | bytearray) and isinstance(second, bytes | bytearray) and first == second
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, int) and isinstance(second, int):
        return first == second
    if isinstance(first, int | float) and isinstance(second, int | float):
        return numbers_agree(float(first), float(second), tolerance)
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(agree(first[k], second[k], tolerance) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(agree(a, b, tolerance) for a, b in zip(first, second, strict=True))
    if first is None or second is None:
        return first is None and second is None
    if isinstance(first, str) and isinstance(second, str):
        return first == second
    return False


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0 to 100) of ``values``, None when there are none.

    Linear interpolation between the two closest ranks (NumPy's default, Excel's PERCENTILE.INC):
    the median of 1, 2, 3, 4 is 2.5; the 95th percentile of 20 values lies between the 19th and
    the 20th.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is from 0 to 100, got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def seconds_between(started_at: datetime | None, finished_at: datetime | None) -> float | None:
    """How long something ran, in seconds (None when either moment is unknown)."""
    if started_at is None or finished_at is None:
        return None
    return (finished_at - started_at).total_seconds()


#: Statuses counted as failures: the prediction gave no answer.
FAILURES = frozenset({PredictionStatus.FAILED, PredictionStatus.EXPIRED})


@dataclass
class VersionFigures:
    """What one version served: how many predictions, how many failed, how long they took.

    Latencies are those of COMPLETED predictions (``finished_at - started_at``): a failure's
    time says when it gave up (a timeout, a TTL), not how fast the model answers.
    """

    version: str
    predictions: int = 0
    completed: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, status: PredictionStatus, started_at: datetime | None, finished_at: datetime | None) -> None:
        """Count one prediction of this version."""
        self.predictions += 1
        if status in FAILURES:
            self.failed += 1
        elif status is PredictionStatus.COMPLETED:
            self.completed += 1
            took = seconds_between(started_at, finished_at)
            if took is not None:
                self.latencies.append(took)

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)

    def document(self) -> dict[str, Any]:
        """The figures as JSON (latencies in seconds)."""
        return {
            "version": self.version,
            "predictions": self.predictions,
            "completed": self.completed,
            "failed": self.failed,
            "p50_seconds": self.p50,
            "p95_seconds": self.p95,
        }


@dataclass
class ShadowFigures:
    """How a shadow version answered the inputs one served version answered.

    ``compared`` counts the inputs both answered (both COMPLETED, both outputs readable);
    ``agreed`` those where the outputs agree (:func:`agree`). ``unreadable`` counts the inputs
    both answered but one output could not be read (gone from S3, for instance).
    """

    version: str
    served: str
    shadowed: int = 0
    completed: int = 0
    failed: int = 0
    compared: int = 0
    agreed: int = 0
    unreadable: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(
        self,
        status: PredictionStatus,
        started_at: datetime | None,
        finished_at: datetime | None,
        agreed: bool | None,
    ) -> None:
        """Count one shadowed input; ``agreed`` None: not compared (see the class)."""
        self.shadowed += 1
        if status in FAILURES:
            self.failed += 1
        elif status is PredictionStatus.COMPLETED:
            self.completed += 1
            took = seconds_between(started_at, finished_at)
            if took is not None:
                self.latencies.append(took)
        if agreed is not None:
            self.compared += 1
            self.agreed += int(agreed)

    @property
    def agreement(self) -> float | None:
        """The share of compared inputs whose outputs agree (0 to 1; None: none compared)."""
        return self.agreed / self.compared if self.compared else None

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)

    def document(self) -> dict[str, Any]:
        """The figures as JSON (latencies in seconds, agreement from 0 to 1)."""
        return {
            "version": self.version,
            "served": self.served,
            "shadowed": self.shadowed,
            "completed": self.completed,
            "failed": self.failed,
            "compared": self.compared,
            "agreed": self.agreed,
            "unreadable": self.unreadable,
            "agreement": self.agreement,
            "p50_seconds": self.p50,
            "p95_seconds": self.p95,
        }
