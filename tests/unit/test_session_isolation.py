"""A unit test sees nothing of the session's local runtime.

In `make test` one pytest run takes every directory in order: tests/e2e starts the session's
runtime, and it lives until the session ends, through tests/unit. While it ran there, its handlers
kept rebuilding bootstrap's adapters, and its environment (endpoint, table names) was every test's.
"""

from __future__ import annotations

import os

from conftest import ENVIRONMENT_AT_START, started_session_runtime
from ensemble_gateway import bootstrap
from ensemble_gateway.settings import Settings

# What would point a unit test at an AWS, real or local: the settings and the endpoints.
WATCHED = sorted(
    {field.alias for field in Settings.model_fields.values() if field.alias}
    | {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
)


def test_a_unit_test_sees_none_of_the_session_runtimes_environment_or_adapters() -> None:
    # GIVEN this session, in which the session's runtime may have run (and still exist)
    session = started_session_runtime()

    # WHEN a unit test reads the environment
    now = {name: os.environ.get(name) for name in WATCHED}

    # THEN the settings and endpoints are as they were when the session began
    assert now == {name: ENVIRONMENT_AT_START.get(name) for name in WATCHED}
    # AND so is every other variable the runtime set
    if session is not None:
        assert {name: os.environ.get(name) for name in session.outside} == session.outside
        assert os.environ.get("AWS_ENDPOINT_URL") != session.local.aws_url
    # AND bootstrap has nothing cached (no settings read, no adapter built, from the runtime's)
    cached = sorted(name for name, builder in vars(bootstrap).items() if _cached_entries(builder))
    assert cached == []


def _cached_entries(builder: object) -> int:
    """How many results a functools-cached builder holds (0 for anything else)."""
    cache_info = getattr(builder, "cache_info", None)
    return int(cache_info().currsize) if callable(cache_info) else 0
