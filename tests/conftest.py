"""Shared fixtures: the local runtime (moto + our middlewares) with the example catalog, an API
client, and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# As the local runtime sets it: moto reads it when it first serves IAM in this process, which may
# be a test's moto server before the runtime starts (AWS's managed policies exist in every account).
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
# The environment before any test ran: what tests that use no runtime or stack must see.
ENVIRONMENT_AT_START = dict(os.environ)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def trained_models() -> Path:
    """The example models, trained (deterministically) if their artefacts are absent."""
    train = _load_module(EXAMPLES / "train.py", "examples_train")
    train.train_all()
    return EXAMPLES / "models"


class SessionRuntime:
    """The session's local runtime, active only during the tests that use it (``runtime``).

    Its pollers and sweeper run the real handlers in this process, and handlers read ``os.environ``
    and bootstrap's cached adapters: left running through other tests, they act on whatever those
    tests configure (the sweeper swept each integration module's stack), and those tests see the
    runtime's settings. So between the tests that use it, its event sources are paused and the
    variables it set are put back as they were before it started, with bootstrap reset; the next
    test that uses it gets both back. Its moto and API servers keep running (nothing else calls them).
    """

    def __init__(self, local: Any, outside: dict[str, str | None]) -> None:
        self.local = local
        # The variables the runtime set: their values before it started (None: unset), and its own.
        self.outside = outside
        self.inside = {name: os.environ.get(name) for name in outside}
        self.active = True

    @property
    def sweeper(self) -> Any:
        from ensemble_gateway.local.pollers import ScheduleRunner

        return next(t for t in self.local._threads if isinstance(t, ScheduleRunner))

    def pause(self) -> None:
        from ensemble_gateway import bootstrap

        if not self.active:
            return
        self.active = False
        if not self.local.pause_event_sources():
            warnings.warn("the session runtime's event sources were still busy after 30 s", stacklevel=1)
        for name, value in self.outside.items():
            # Left alone when changed since the runtime set it: whoever changed it restores it.
            if os.environ.get(name) == self.inside[name]:
                _set_environ(name, value)
        bootstrap.reset()

    def resume(self) -> None:
        from ensemble_gateway import bootstrap

        if self.active:
            return
        for name, value in self.inside.items():
            _set_environ(name, value)
        bootstrap.reset()
        self.local.resume_event_sources()
        self.active = True


def _set_environ(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# The session runtime once started, and whether the test being set up uses it.
_SESSION: dict[str, Any] = {"runtime": None, "in_use": False}


def started_session_runtime() -> SessionRuntime | None:
    """The session's runtime if a test has started it (it lives until the session ends)."""
    session: SessionRuntime | None = _SESSION["runtime"]
    return session


def _uses_session_runtime(item: pytest.Item | None) -> bool:
    # Through `runtime`, directly or by another fixture (`api`, `scratch_store`...). A module's own
    # fixture named `runtime` does not depend on `session_runtime`.
    names = getattr(item, "fixturenames", ())
    return "runtime" in names and "session_runtime" in names


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: a module fixture of a test that uses the runtime may use it too.
    _SESSION["in_use"] = _uses_session_runtime(item)
    if _SESSION["runtime"] is not None and _SESSION["in_use"]:
        _SESSION["runtime"].resume()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    try:
        return (yield)
    finally:
        # After the fixtures the next test does not share are gone, before its own are set up;
        # not between two tests that use the runtime (work one leaves in flight goes on).
        session = _SESSION["runtime"]
        if session is not None and not _uses_session_runtime(nextitem):
            session.pause()


@pytest.fixture(scope="session")
def session_runtime(trained_models: Path) -> Iterator[SessionRuntime]:
    """The session's runtime, started once; paused unless the test uses ``runtime``."""
    from ensemble_gateway.local.catalog import apply_catalog
    from ensemble_gateway.local.runtime import LocalRuntime

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    before = dict(os.environ)
    local = LocalRuntime(ROOT, api_port=0, parameter_overrides={"UploadUrlExpirySeconds": "10"}, sweep_interval=1.0)
    local.start()
    try:
        apply_catalog(local, EXAMPLES / "catalog.json")
        changed = {name for name in {*before, *os.environ} if before.get(name) != os.environ.get(name)}
        session = SessionRuntime(local, {name: before.get(name) for name in changed})
        _SESSION["runtime"] = session
        if not _SESSION["in_use"]:
            session.pause()
        yield session
    finally:
        _SESSION["runtime"] = None
        local.stop()


@pytest.fixture(scope="session")
def runtime(session_runtime: SessionRuntime) -> Any:
    """One local runtime for the session: uploads expire after 10 s, the sweeper runs every second."""
    return session_runtime.local


@pytest.fixture
def scratch_store(runtime: Any) -> Iterator[Any]:
    """A DynamoPredictionStore on a predictions table of its own in the session's local AWS.

    Not mock_aws: entering it would reset moto's in-process backends, which the runtime shares.
    """
    import time

    from ensemble_gateway.adapters.dynamodb import DynamoPredictionStore

    client: Any = runtime.client("dynamodb")
    name = f"scratch-{time.monotonic_ns()}"
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "prediction_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "prediction_id", "AttributeType": "S"}],
    )
    yield DynamoPredictionStore(name, client)
    client.delete_table(TableName=name)


@pytest.fixture(scope="session")
def client_credentials(runtime: Any) -> dict[str, Any]:
    from ensemble_gateway.adapters.dynamodb import DynamoClientDirectory
    from ensemble_gateway.admin import create_client

    directory = DynamoClientDirectory(runtime.stack.outputs["ClientsTableName"], runtime.client("dynamodb"))
    client, api_key = create_client(directory, "tests")
    return {"client": client, "api_key": api_key, "webhook_secret": client.webhook_secrets[0]}


@pytest.fixture(scope="session")
def api(runtime: Any, client_credentials: dict[str, Any]) -> Any:
    from ensemble_gateway.client import GatewayClient

    return GatewayClient(runtime.api_url, client_credentials["api_key"])


class WebhookReceiver:
    """A real HTTP server recording every webhook; it can answer errors or be down at first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.fail_status = 503
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with receiver.lock:
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                    receiver.requests.append(
                        {
                            "headers": dict(self.headers.items()),
                            "body": body,
                            "answered": receiver.fail_status if failing else 204,
                        }
                    )
                    receiver.arrived.notify_all()
                self.send_response(receiver.fail_status if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self, prediction_id: str) -> list[dict[str, Any]]:
        """Webhooks about ``prediction_id`` that the receiver accepted (2xx)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r["answered"] < 300 and json.loads(r["body"])["data"]["prediction_id"] == prediction_id
            ]

    def attempts(self, prediction_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if json.loads(r["body"])["data"]["prediction_id"] == prediction_id]

    def wait_for(self, prediction_id: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        import time

        deadline = time.monotonic() + timeout
        with self.lock:
            while time.monotonic() < deadline:
                found = [
                    r
                    for r in self.requests
                    if r["answered"] < 300 and json.loads(r["body"])["data"]["prediction_id"] == prediction_id
                ]
                if len(found) >= count:
                    return found
                self.arrived.wait(timeout=0.2)
        return self.delivered(prediction_id)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def sample(service: str, name: str | None = None) -> bytes:
    """A committed sample input of an example service (the first one when no name is given)."""
    folder = EXAMPLES / service / "samples"
    path = folder / name if name else sorted(folder.iterdir())[0]
    return path.read_bytes()


# Figures the fault-injection suite collects; printed at the end of the run.
FAULT_FIGURES: dict[str, int] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FAULT_FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    width = max(len(name) for name in FAULT_FIGURES)
    for name, value in FAULT_FIGURES.items():
        terminalreporter.write_line(f"{name:{width}} {value}")
