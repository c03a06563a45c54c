"""The local runtime imports every handler before any event source or request can invoke one."""

from __future__ import annotations

import sys
import threading
import types

from ensemble_gateway.local.deployer import FunctionSpec
from ensemble_gateway.local.lambdas import FunctionRegistry


def slow_module(name: str, started: threading.Event, release: threading.Event, log: list[str]) -> None:
    """A handler module whose import takes until ``release`` (a cold start that is still running)."""

    class SlowFinder:
        def find_spec(self, fullname: str, path: object, target: object = None) -> object:
            if fullname != name:
                return None
            from importlib.machinery import ModuleSpec

            return ModuleSpec(fullname, self)  # type: ignore[arg-type]

        def create_module(self, spec: object) -> None:
            return None

        def exec_module(self, module: types.ModuleType) -> None:
            log.append("import started")
            started.set()
            release.wait(5)
            module.handler = lambda event, context: "answered"  # type: ignore[attr-defined]
            log.append("import finished")

    sys.meta_path.insert(0, SlowFinder())  # type: ignore[arg-type]


def test_preload_imports_every_handler_before_anything_invokes_it():
    # GIVEN two functions whose handler modules are not imported yet
    first, second = "fake_preloaded_handler_one", "fake_preloaded_handler_two"
    started, release, log = threading.Event(), threading.Event(), []
    release.set()
    slow_module(first, started, release, log)
    slow_module(second, started, release, log)
    specs = {
        "One": FunctionSpec("One", "one", f"{first}.handler", {}, 30, []),
        "Two": FunctionSpec("Two", "two", f"{second}.handler", {}, 30, []),
    }
    registry = FunctionRegistry(specs, "us-east-1")
    assert first not in sys.modules and second not in sys.modules

    # WHEN the registry is preloaded (as the runtime does before starting event sources and the API)
    registry.preload()

    # THEN both modules are imported, once each, and invoking runs them without importing again
    assert log == ["import started", "import finished"] * 2
    assert first in sys.modules and second in sys.modules
    assert registry.invoke(specs["One"], {}) == "answered" and registry.invoke(specs["Two"], {}) == "answered"
    assert len(log) == 4
    for name in (first, second):
        sys.modules.pop(name, None)
