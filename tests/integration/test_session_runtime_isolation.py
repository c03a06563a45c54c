"""The session's local runtime cannot touch an integration module's stack.

Both live in one process: the runtime's sweeper and pollers run the real handlers, which build
their adapters from ``os.environ`` — during this module, this module's stack. Running through the
integration modules, the session sweeper swept their tables every second.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from typing import Any

from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore
from ensemble_gateway.domain.models import Prediction, PredictionStatus, utcnow

from .conftest import EVENTS, REGION, Harness


def test_the_session_runtime_does_not_sweep_this_modules_overdue_prediction(
    stack: Harness, session_runtime: Any
) -> None:
    # GIVEN the session's runtime, started, its sweeper due every second
    sweeper = session_runtime.sweeper
    assert sweeper.interval == 1.0
    # AND in this module's stack, a prediction whose upload deadline passed a minute ago
    store = DynamoPredictionStore(stack.environment["PREDICTIONS_TABLE"], stack.client("dynamodb"))
    past = utcnow() - timedelta(minutes=1)
    assert store.create(
        Prediction(
            prediction_id="p-overdue",
            service="fraud-score",
            owner="c1",
            status=PredictionStatus.PENDING_UPLOAD,
            upload_expires_at=past,
            deadline_at=past,
        )
    )
    runs = sweeper.scheduled_runs

    # WHEN three of the session sweeper's intervals pass
    time.sleep(3 * sweeper.interval + 0.5)

    # THEN the prediction is still waiting for its upload: the session sweeper made no run
    record = store.get("p-overdue")
    assert record is not None and record.status is PredictionStatus.PENDING_UPLOAD
    assert sweeper.scheduled_runs == runs
    # AND it was the sweeper's to expire: this stack's own sweeper (the test playing EventBridge) does
    from ensemble_gateway.handlers import sweeper as sweeper_function

    event: dict[str, Any] = json.loads((EVENTS / "sweeper.json").read_text(encoding="utf-8"))
    assert sweeper_function.handler(event, stack.context("SweeperFunction")) == {"swept": 1}
    record = store.get("p-overdue")
    assert record is not None and record.status is PredictionStatus.EXPIRED


def test_this_module_sees_its_stack_not_the_session_runtimes(stack: Harness, session_runtime: Any) -> None:
    # GIVEN the session's runtime, started (its own endpoint and tables)
    local = session_runtime.local
    assert local.aws_url and local.stack is not None

    # WHEN a test of this module reads the environment and the handlers' settings
    from ensemble_gateway.settings import get_settings

    settings = get_settings()

    # THEN every variable the runtime set is this module's stack's, or as it was before the runtime
    harness: dict[str, str | None] = {
        "AWS_ENDPOINT_URL": stack.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": None,
        **stack.environment,
    }
    leaked = {
        name: os.environ.get(name)
        for name in session_runtime.inside
        if os.environ.get(name) != harness.get(name, session_runtime.outside[name])
    }
    assert leaked == {}
    assert os.environ["AWS_ENDPOINT_URL"] != local.aws_url
    # AND the handlers' settings are this stack's
    assert settings.predictions_table == stack.environment["PREDICTIONS_TABLE"]
    assert settings.predictions_table != local.stack.outputs["PredictionsTableName"]
    assert settings.webhook_forbidden_loopback_ports == ()
