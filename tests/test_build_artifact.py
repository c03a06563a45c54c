"""The Lambda artifact of `make build` (tools/build_lambda.py): what `sam deploy` will upload.

The build runs once for this module, into a temporary directory (the repository's .aws-sam is left
alone), and the tests check the artifact as Lambda will see it: laid out as `sam build` lays it out,
every compiled file built for the functions' runtime and architecture (python3.12 / arm64 in the
template), each handler module present, the dependencies complete for *that* runtime, and each
function under Lambda's 250 MB unzipped limit.

The build needs the package index (PyPI). Nothing here is skipped when it is unreachable: a skip
would report a green run with no artifact checked, so the build's failure fails the tests with
pip's own output, which names the connection error.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
BUILD_SCRIPT = ROOT / "tools" / "build_lambda.py"
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
MACHINES = {"arm64": ("aarch64", 183), "x86_64": ("x86_64", 62)}  # e_machine: EM_AARCH64, EM_X86_64
# The other architecture's / other Pythons' markers that must not appear in a file name.
FOREIGN_NAME_MARKERS = ("win32", "win_amd64", "darwin", "macosx", "musllinux")


def _decode(path: Path) -> dict[str, Any]:
    """A template as CloudFormation sees it (cfn-lint's reader: independent of the build's own)."""
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    assert not problems, [str(p) for p in problems]
    assert template is not None
    return json.loads(json.dumps(template))


class Function:
    def __init__(self, logical_id: str, properties: dict[str, Any]) -> None:
        self.logical_id = logical_id
        self.handler: str = properties["Handler"]
        self.runtime: str = properties["Runtime"]
        self.architecture: str = (properties.get("Architectures") or ["x86_64"])[0]

    @property
    def python_tag(self) -> str:  # python3.12 -> cp312
        return "cp3" + self.runtime.removeprefix("python3.")


def _functions(template: dict[str, Any]) -> list[Function]:
    globals_ = template.get("Globals", {}).get("Function", {})
    return [
        Function(logical_id, {**globals_, **resource.get("Properties", {})})
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]


class Artifact:
    def __init__(self, source: dict[str, Any], build_dir: Path, output: str, seconds: float) -> None:
        self.build_dir = build_dir
        self.output = output
        self.seconds = seconds
        self.source = source
        self.built = _decode(build_dir / "template.yaml")
        self.functions = _functions(self.source)

    def folder(self, function: Function) -> Path:
        return self.build_dir / self.built["Resources"][function.logical_id]["Properties"]["CodeUri"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    build_dir = tmp_path_factory.mktemp("lambda") / "build"
    source = _decode(TEMPLATE)  # the template the build reads (read first: others may be editing it)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--build-dir", str(build_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(
            f"the Lambda build failed (exit {result.returncode}, {seconds:.0f} s). It needs the package index "
            f"(PyPI): if pip could not reach it, its output below says so.\n{output[-6000:]}",
            pytrace=False,
        )
    print(f"\nbuild: {seconds:.1f} s\n{result.stdout}")
    return Artifact(source, build_dir, output, seconds)


def _files(folder: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(folder):
        for name in names:
            yield Path(directory, name)


def _assert_same(built: Any, source: Any, build_dir: Path, where: str) -> None:
    if isinstance(source, dict) and isinstance(built, dict):
        assert built.keys() == source.keys(), f"{where}: {sorted(built)} != {sorted(source)}"
        for key in source:
            _assert_same(built[key], source[key], build_dir, f"{where}.{key}")
    elif isinstance(source, list) and isinstance(built, list):
        assert len(built) == len(source), where
        for index, (b, s) in enumerate(zip(built, source, strict=True)):
            _assert_same(b, s, build_dir, f"{where}[{index}]")
    elif isinstance(source, str) and isinstance(built, str) and built != source:
        assert (build_dir / built).resolve() == (ROOT / source).resolve(), f"{where}: {built!r} != {source!r}"
    else:
        assert built == source, f"{where}: {built!r} != {source!r}"


# ----------------------------------------------------------------------------------------------
# Layout: what `sam build` would have written, where `sam deploy` looks for it
# ----------------------------------------------------------------------------------------------
def test_built_template_is_the_template_with_each_function_pointing_at_its_folder(artifact: Artifact) -> None:
    # GIVEN the source template with each function's CodeUri set to its own folder (sam build's layout)
    expected = json.loads(json.dumps(artifact.source))
    for function in artifact.functions:
        expected["Resources"][function.logical_id].setdefault("Properties", {})["CodeUri"] = function.logical_id

    # THEN the built template says exactly that: nothing else changed in the translation to long form
    # (a local path elsewhere, e.g. a DefinitionUri, may be rewritten to name the same file from there)
    _assert_same(artifact.built, expected, artifact.build_dir, "")
    # AND the build dir holds the template and one folder per function, nothing else
    assert sorted(p.name for p in artifact.build_dir.iterdir()) == sorted(
        ["template.yaml", *(f.logical_id for f in artifact.functions)]
    )
    for function in artifact.functions:
        assert artifact.folder(function).is_dir(), f"{function.logical_id}: CodeUri {artifact.folder(function)}"


def test_every_handler_module_is_in_its_function_folder(artifact: Artifact) -> None:
    assert artifact.functions, "the template has no functions"
    for function in artifact.functions:
        module, name = function.handler.rsplit(".", 1)
        path = artifact.folder(function) / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{function.logical_id}: {function.handler} -> {path} is missing"
        # The handler is defined at module level (def, assignment or import): Lambda's lookup.
        defined: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
            elif isinstance(node, ast.ImportFrom):
                defined.update(alias.asname or alias.name for alias in node.names)
        assert name in defined, f"{function.logical_id}: {path} defines no {name}"
        # The package's parents are packages too (regular, not namespace: Lambda imports either).
        for depth in range(1, module.count(".") + 1):
            init = artifact.folder(function).joinpath(*module.split(".")[:depth], "__init__.py")
            assert init.is_file(), f"{function.logical_id}: {init} is missing"


def test_nothing_lambda_does_not_need(artifact: Artifact) -> None:
    for function in artifact.functions:
        folder = artifact.folder(function)
        caches = [p for p in folder.rglob("__pycache__")] + [p for p in folder.rglob("*.pyc")]
        assert not caches, f"{function.logical_id}: byte code of the build machine's Python: {caches[:5]}"
        assert not (folder / "bin").exists(), f"{function.logical_id}: console scripts of the build machine"
        assert not list(folder.glob("*.egg-info")), f"{function.logical_id}: egg-info of the source tree"
        assert not (folder / "tests").exists()


# ----------------------------------------------------------------------------------------------
# Binaries: for the runtime's Python and architecture, nothing of the build machine's
# ----------------------------------------------------------------------------------------------
def _elf_machine(path: Path) -> tuple[int, int] | None:
    """(EI_CLASS, e_machine) of an ELF file (64-bit little-endian expected), None if not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return header[4], int.from_bytes(header[18:20], "little")


def test_every_binary_is_for_the_functions_runtime_and_architecture(artifact: Artifact) -> None:
    for function in artifact.functions:
        machine, e_machine = MACHINES[function.architecture]
        other_machine = next(m for a, (m, _) in MACHINES.items() if a != function.architecture)
        version = function.runtime.removeprefix("python3.")
        folder = artifact.folder(function)
        elves, extensions = [], []
        for path in _files(folder):
            name = path.name
            relative = path.relative_to(folder)
            foreign = other_machine in name or any(m in name for m in FOREIGN_NAME_MARKERS)
            assert not foreign, f"{relative}: built for another platform than {function.runtime}/{machine}"
            if ".cpython-" in name:
                assert f".cpython-3{version}-{machine}-linux-gnu." in name, f"{relative}: not {function.runtime}"
            if name.endswith(".so") or ".so." in name:
                extensions.append(relative)
            elf = _elf_machine(path)
            if elf is not None:
                elves.append(relative)
                assert elf == (2, e_machine), f"{relative}: ELF class/machine {elf}, expected 64-bit {machine}"
        # Not vacuous: pydantic-core (at least) is compiled.
        assert any("pydantic_core" in str(p) for p in extensions), extensions
        assert set(extensions) <= set(elves), "a .so that is not an ELF file"
        print(f"{function.logical_id}: {len(elves)} ELF files, all {machine}")


def test_every_platform_wheel_is_tagged_for_the_runtime(artifact: Artifact) -> None:
    for function in artifact.functions:
        machine, _ = MACHINES[function.architecture]
        folder = artifact.folder(function)
        wheels = sorted(folder.glob("*.dist-info/WHEEL"))
        assert wheels, f"{function.logical_id}: no dist-info: the dependencies are missing"
        for wheel in wheels:
            fields = [line.split(":", 1) for line in wheel.read_text().splitlines() if ":" in line]
            tags = [value.strip() for key, value in fields if key == "Tag"]
            assert tags, wheel
            for tag in tags:
                interpreter, abi, platform = tag.split("-")
                if platform == "any":
                    assert abi == "none", f"{wheel.parent.name}: {tag}"
                    continue
                # A platform wheel: CPython of the runtime's version (or the stable ABI), manylinux, this arch.
                assert platform.startswith("manylinux") and platform.endswith(f"_{machine}"), f"{wheel.parent.name}"
                if abi == "abi3":
                    assert int(interpreter.removeprefix("cp")) <= int(function.python_tag[2:]), tag
                else:
                    assert (interpreter, abi) == (function.python_tag, function.python_tag), f"{wheel.parent}: {tag}"


# ----------------------------------------------------------------------------------------------
# Dependencies: complete for the runtime (pip evaluates markers with the build machine's Python)
# ----------------------------------------------------------------------------------------------
def _lambda_environment(function: Function) -> dict[str, str]:
    version = function.runtime.removeprefix("python")
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": MACHINES[function.architecture][0],
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
    }


def test_runtime_dependencies_are_complete_for_the_lambda_python(artifact: Artifact) -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for function in artifact.functions:
        folder = artifact.folder(function)
        environment = _lambda_environment(function)
        installed = {
            canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(folder)])
        }
        # Walk the requirements from [project] dependencies, markers evaluated for the Lambda runtime.
        pending: list[tuple[Requirement, set[str]]] = [(Requirement(r), {""}) for r in dependencies]
        seen: set[tuple[str, frozenset[str]]] = set()
        while pending:
            requirement, parent_extras = pending.pop()
            if requirement.marker and not any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in parent_extras
            ):
                continue
            name = canonicalize_name(requirement.name)
            assert name in installed, f"{function.logical_id}: {requirement} is not in the package"
            version = installed[name].version
            assert requirement.specifier.contains(version, prereleases=True), f"{name} {version} !~ {requirement}"
            key = (name, frozenset(requirement.extras))
            if key in seen:
                continue
            seen.add(key)
            for dependency in installed[name].requires or []:
                pending.append((Requirement(dependency), {"", *requirement.extras}))
        # Only runtime dependencies: none of the local/examples/dev extras.
        for extra_only in ("moto", "werkzeug", "numpy", "scikit-learn", "pytest", "pyyaml"):
            assert extra_only not in installed, f"{function.logical_id}: {extra_only} is not a runtime dependency"
        # And our own package, from the function's CodeUri.
        assert (folder / "ensemble_gateway" / "__init__.py").is_file()


# ----------------------------------------------------------------------------------------------
# Size: Lambda's limit is 250 MB unzipped (function and layers together)
# ----------------------------------------------------------------------------------------------
def test_each_function_is_under_the_unzipped_size_limit(artifact: Artifact) -> None:
    total = 0
    for function in artifact.functions:
        size = sum(p.stat().st_size for p in _files(artifact.folder(function)))
        total += size
        print(f"{function.logical_id:<28} {size / 2**20:6.1f} MB unzipped")
        assert size < UNZIPPED_LIMIT_BYTES, f"{function.logical_id}: {size / 2**20:.1f} MB"
    print(f"{'all functions':<28} {total / 2**20:6.1f} MB unzipped (build: {artifact.seconds:.1f} s)")
