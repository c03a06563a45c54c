"""Hosting one model: its code imported, its requirements checked, its model loaded, its requests served.

``ModelHost.load`` does what a framework container does when it starts, at once (``add_endpoint``
calls it, so a broken model is reported when it is registered, not at its first request):

1. The framework's own package must be importable (``torch`` for PyTorch, ``transformers`` for
   Hugging Face): the containers always have it.
2. ``code/requirements.txt``, when present, must be met by what is installed. The containers
   ``pip install`` it at start; the local runtime installs nothing at run time, so it fails the
   load with one message listing each missing or mismatched package and the ``pip install`` line.
3. The entry point ``code/<program>`` is imported (``inference.py``, or another name as
   ``SAGEMAKER_PROGRAM`` gives it, with or without ``.py``). Without one, the framework's
   defaults must be able to serve the artefacts alone (XGBoost's ``xgboost-model``, PyTorch's
   ``model.pt``, Hugging Face's ``config.json``).
4. ``pre_model_fn``, ``model_fn`` and ``model_warmup_fn`` run, as the toolkit runs them.

Any failure is a ``ModelLoadError`` naming the file and the exception, with the line of the
model's code where it was raised (no traceback dump).

Local differences, on purpose:

- Without worker processes (``model_processes``, see ``processes``), one process hosts every
  endpoint; with them, each worker process loads one endpoint as below. An endpoint's own
  modules (``code/*.py``) are importable
  while its entry point is imported and while ``model_fn`` runs (so pickled custom classes load),
  and are then kept private to that endpoint, so two endpoints may both have a ``utils.py``; an
  import of them first made later, inside ``predict_fn`` say, is not supported.
- The Model's environment variables (``LocalEndpoint.environment``, plus ``SM_MODEL_DIR`` and
  ``SAGEMAKER_PROGRAM``) are set in ``os.environ`` while the entry point is imported and the load
  functions run, then restored. During predictions the process environment is not switched: a
  handler reading ``os.environ`` then sees the runtime's.
- Scripts written for the scikit-learn container import ``sagemaker_containers.beta.framework``
  (``worker``, ``encoders``, ``content_types``, ``errors``). That package pins flask 1.1.1 and
  werkzeug 0.15 and cannot be installed beside moto, so when it is not installed the directory
  ``compat/`` (a small stand-in of ours, see its docstring) is appended to ``sys.path`` while model
  code is imported: appended, so an installed ``sagemaker_containers`` always wins. A module once
  imported stays in ``sys.modules``, so later imports of it from handlers work too.
- The model object is shared by the endpoint's worker threads (the containers run one copy per
  worker process), so a model with ``max_concurrency > 1`` must tolerate concurrent calls.
- Importing model code changes process-wide state, so loads are serialised: a ``model_fn`` that
  never returns blocks every later ``add_endpoint``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import itertools
import logging
import os
import re
import shlex
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion

from .endpoint import DEFAULT_PROGRAM, FRAMEWORKS, LocalEndpoint
from .frameworks import framework_for
from .toolkit import Framework, Handlers, ModelContext, call_handler, error_message, invoke, resolve_handlers

__all__ = ["ModelHost", "ModelLoadError", "entry_point_name", "unmet_requirements"]

_log = logging.getLogger(__name__)

PROGRAM_VARIABLE = "SAGEMAKER_PROGRAM"
MODEL_DIR_VARIABLE = "SM_MODEL_DIR"
REQUIREMENTS_FILE = "requirements.txt"
COMPAT_DIR = Path(__file__).resolve().with_name("compat")

# Importing model code changes process-wide state (sys.path, sys.modules, os.environ): one at a time.
_IMPORT_LOCK = threading.RLock()
_module_counter = itertools.count(1)


class ModelLoadError(Exception):
    """An endpoint's model could not be loaded: its code, requirements, framework package or ``model_fn`` failed.

    The message names the file and the exception in one paragraph fit for a terminal.
    """


def _with_py(program: str) -> str:
    return program if program.endswith(".py") else f"{program}.py"


def entry_point_name(endpoint: LocalEndpoint) -> str:
    """The file under ``code/`` the containers would import: ``program``, or ``SAGEMAKER_PROGRAM``.

    ``program`` left at its default gives way to a ``SAGEMAKER_PROGRAM`` in the endpoint's environment.

    Raises
    ------
    ModelLoadError
        When the two disagree, or the name is not a file name.
    """
    program = endpoint.program or DEFAULT_PROGRAM
    from_environment = endpoint.environment.get(PROGRAM_VARIABLE)
    if from_environment:
        if program == DEFAULT_PROGRAM:
            program = from_environment
        elif _with_py(from_environment) != _with_py(program):
            raise ModelLoadError(
                f"endpoint {endpoint.name!r}: program {endpoint.program!r} and the environment's "
                f"{PROGRAM_VARIABLE}={from_environment!r} name different entry points; give one of them."
            )
    name = _with_py(program)
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelLoadError(f"endpoint {endpoint.name!r}: the program {program!r} must be a file name in code/.")
    return name


def unmet_requirements(path: Path) -> list[tuple[str, str]]:
    """The requirements of ``path`` (a requirements file) this environment does not meet.

    Returns ``(requirement, problem)`` pairs, e.g. ``("scikit-learn>=99", "1.9.1 is installed")``.
    Options (``-r``, ``--index-url``...) and lines that are not requirement specifiers (a bare VCS
    URL) are skipped with a warning: there is no package name to check them by.
    """
    unmet: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            _log.warning("%s: option %r not checked by the local SageMaker runtime", path, line)
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            _log.warning("%s: %r is not a requirement specifier; not checked", path, line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append((_without_marker(requirement), "not installed"))
            continue
        try:
            satisfied = requirement.specifier.contains(installed, prereleases=True)
        except InvalidVersion:
            satisfied = False
        if not satisfied:
            unmet.append((_without_marker(requirement), f"{installed} is installed"))
    return unmet


def _without_marker(requirement: Requirement) -> str:
    """The requirement as ``pip install`` takes it: its marker held here, so it is left out."""
    bare = Requirement(str(requirement))
    bare.marker = None
    return str(bare)


def _real_sagemaker_containers_installed() -> bool:
    search_path = [entry for entry in sys.path if Path(entry or ".").resolve() != COMPAT_DIR]
    return importlib.machinery.PathFinder.find_spec("sagemaker_containers", search_path) is not None


def _is_under(path: str | None, directory: Path) -> bool:
    if not path:
        return False
    try:
        return Path(path).resolve().is_relative_to(directory)
    except (OSError, ValueError):
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ModelHost:
    """One endpoint's model: ``load`` it once, then ``invoke`` it from any worker thread.

    Parameters
    ----------
    endpoint : LocalEndpoint
        The endpoint whose model directory, framework, program and environment are used.
    """

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint
        self.model_dir = Path(endpoint.model_dir).resolve()
        self.code_dir = self.model_dir / "code"
        safe_name = re.sub(r"\W", "_", endpoint.name)
        self.module_name = f"_sagemaker_local_{safe_name}_{next(_module_counter)}"
        self._private_modules: dict[str, ModuleType] = {}
        self._framework: Framework | None = None
        self._handlers: Handlers | None = None
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        """Whether ``load`` succeeded."""
        return self._handlers is not None

    @property
    def framework(self) -> Framework | None:
        """The framework defaults in use once loaded (XGBoost's differ with and without code)."""
        return self._framework

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Import the entry point and load the model, as a container does when it starts.

        Raises
        ------
        ModelLoadError
            When the framework's package, a requirement, the entry point or a load function fails.
        """
        endpoint = self.endpoint
        label = f"endpoint {endpoint.name!r}"
        if endpoint.framework not in FRAMEWORKS:
            known = ", ".join(FRAMEWORKS)
            raise ModelLoadError(f"{label}: framework must be one of {known}, got {endpoint.framework!r}")
        if not self.model_dir.is_dir():
            raise ModelLoadError(f"{label}: the model directory {self.model_dir} does not exist")
        program = entry_point_name(endpoint)
        entry_point = self.code_dir / program
        has_entry_point = entry_point.is_file()
        framework = framework_for(endpoint.framework, has_entry_point=has_entry_point)
        if framework is None:
            raise ModelLoadError(
                f"{label}: there is no {entry_point}, and the {endpoint.framework!r} framework has no "
                "defaults that serve a model without code (a model_fn at least)"
            )
        self._check_framework_package(framework, label)
        if not has_entry_point:
            self._check_artefacts(framework, entry_point, label)
        requirements = self.code_dir / REQUIREMENTS_FILE
        if requirements.is_file():
            self._check_requirements(requirements, label)
        context = self.context({})
        model_dir = str(self.model_dir)
        stage = "import"
        handlers: Handlers | None = None
        with self._model_code_environment(program):
            try:
                module = self._import(entry_point) if has_entry_point else None
                stage = "handlers"
                handlers = resolve_handlers(module, framework)
                if handlers.pre_model_fn is not None:
                    stage = "pre_model_fn"
                    call_handler(handlers.pre_model_fn, context, model_dir)
                stage = "model_fn"
                model = call_handler(handlers.model_fn, context, model_dir)
                if handlers.model_warmup_fn is not None:
                    stage = "model_warmup_fn"
                    call_handler(handlers.model_warmup_fn, context, model_dir, model)
            except (Exception, SystemExit) as error:
                reason = self._load_failure(label, stage, error, entry_point, has_entry_point, framework, handlers)
                raise ModelLoadError(reason) from error
        self._framework, self._handlers, self._model = framework, handlers, model

    def _check_framework_package(self, framework: Framework, label: str) -> None:
        package = framework.required_package
        if package and importlib.util.find_spec(package) is None:
            raise ModelLoadError(
                f"{label}: framework {framework.name!r} needs the Python package {package!r}, which is not "
                f"installed here; the local runtime downloads nothing at run time: pip install {package}"
            )

    def _check_artefacts(self, framework: Framework, entry_point: Path, label: str) -> None:
        if not any(any(self.model_dir.glob(pattern)) for pattern in framework.artefacts):
            wanted = " or ".join(framework.artefacts)
            raise ModelLoadError(
                f"{label}: there is no {entry_point}, and the {framework.name!r} defaults need {wanted} "
                f"in {self.model_dir} to serve a model without code"
            )

    def _check_requirements(self, requirements: Path, label: str) -> None:
        unmet = unmet_requirements(requirements)
        if not unmet:
            return
        listed = "; ".join(f"{requirement} ({problem})" for requirement, problem in unmet)
        command = "pip install " + " ".join(shlex.quote(requirement) for requirement, _ in unmet)
        raise ModelLoadError(
            f"{label}: {requirements} asks for packages this environment does not have: {listed}. "
            "SageMaker installs them when the container starts; the local runtime installs nothing at "
            f"run time. Install them here first: {command}"
        )

    def _import(self, path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(self.module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        return module

    def _environment_variables(self, program: str) -> dict[str, str]:
        return {**self.endpoint.environment, MODEL_DIR_VARIABLE: str(self.model_dir), PROGRAM_VARIABLE: program}

    @contextlib.contextmanager
    def _model_code_environment(self, program: str) -> Iterator[None]:
        """Make the endpoint's code importable and its environment set; afterwards, undo and hide both."""
        with _IMPORT_LOCK:
            code_entry = str(self.code_dir)
            sys.path.insert(0, code_entry)
            compat_entry = None if _real_sagemaker_containers_installed() else str(COMPAT_DIR)
            if compat_entry is not None:
                sys.path.append(compat_entry)
            shadowed = {name: sys.modules.get(name) for name in self._private_modules}
            sys.modules.update(self._private_modules)
            before = set(sys.modules)
            saved = _set_environment(self._environment_variables(program))
            try:
                yield
            finally:
                _set_environment(saved)
                for entry in (code_entry, compat_entry):
                    if entry is not None:
                        with contextlib.suppress(ValueError):
                            sys.path.remove(entry)
                for name in set(sys.modules) - before:
                    module = sys.modules.get(name)
                    if (
                        module is not None
                        and name != self.module_name
                        and _is_under(getattr(module, "__file__", None), self.code_dir)
                    ):
                        self._private_modules[name] = sys.modules.pop(name)
                for name, previous in shadowed.items():
                    if previous is None:
                        sys.modules.pop(name, None)
                    else:
                        sys.modules[name] = previous
                importlib.invalidate_caches()

    def _load_failure(
        self,
        label: str,
        stage: str,
        error: BaseException,
        entry_point: Path,
        has_entry_point: bool,
        framework: Framework,
        handlers: Handlers | None,
    ) -> str:
        """One paragraph: what failed, in which file and line of the model's code, and the exception."""
        exception = f"{type(error).__name__}: {_one_line(error_message(error))}"
        where = self._user_code_line(error, entry_point)
        if stage == "import":
            return f"{label}: importing {entry_point} failed{where}: {exception}"
        if stage == "handlers":
            return f"{label}: {entry_point}: {exception}"
        if handlers is not None and stage in handlers.defined:
            return f"{label}: {stage} of {entry_point} failed{where}: {exception}"
        reason = f"{entry_point} defines no {stage}" if has_entry_point else f"there is no {entry_point}"
        return f"{label}: the {framework.name!r} framework's default {stage} failed ({reason}){where}: {exception}"

    def _user_code_line(self, error: BaseException, entry_point: Path) -> str:
        """`` at line 12`` of the entry point (or ``of code/helper.py``) where the model's code raised."""
        location: tuple[str, int] | None = None
        if isinstance(error, SyntaxError) and _is_under(error.filename, self.code_dir) and error.lineno:
            location = (str(error.filename), error.lineno)
        else:
            for frame in reversed(traceback.extract_tb(error.__traceback__)):
                if _is_under(frame.filename, self.code_dir) and frame.lineno:
                    location = (frame.filename, frame.lineno)
                    break
        if location is None:
            return ""
        path, line = Path(location[0]).resolve(), location[1]
        if path == entry_point.resolve():
            return f" at line {line}"
        return f" at line {line} of {path.relative_to(self.model_dir)}"

    # -- serving ----------------------------------------------------------------------------------
    def context(self, headers: dict[str, str]) -> ModelContext:
        """The context a handler taking one more parameter receives, for a request with ``headers``."""
        return ModelContext(
            model_name=self.endpoint.name,
            system_properties={
                "model_dir": str(self.model_dir),
                "gpu_id": None,
                "batch_size": 1,
                "server_name": "local-sagemaker-runtime",
            },
            request_headers=headers,
        )

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, headers: dict[str, str]
    ) -> tuple[bytes, str]:
        """Run the model on one request: the response body and content type.

        Raises
        ------
        ModelError
            As the container answers the model's failure (see ``toolkit``).
        """
        if self._handlers is None or self._framework is None:
            raise RuntimeError(f"the model of endpoint {self.endpoint.name!r} is not loaded")
        return invoke(
            self._handlers,
            self._framework,
            self._model,
            body,
            content_type,
            accept,
            self.context(headers),
            self.endpoint.environment,
        )


def _set_environment(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set (or, for None, unset) ``values`` in ``os.environ``; the previous values, to restore them."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return previous
