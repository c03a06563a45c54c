"""Build the Lambda artifact into .aws-sam/build, laid out as `sam build` lays it out.

`sam build` needs the Lambda runtime's Python (python3.12) on PATH or Docker; the project promises
Python 3.11+. This builds the same artifact with pip's cross-platform options instead:

- the runtime dependencies, ``[project] dependencies`` of pyproject.toml (not the extras), are
  installed with ``pip install --target DIR --only-binary=:all: --implementation cp
  --python-version 3.12 --platform manylinux..._aarch64`` (the function's Runtime and
  Architectures decide the version and the platform), so only wheels built for the Lambda
  runtime go in, whatever the Python running the build;
- the function's CodeUri (``src/``: the ensemble_gateway package) is copied next to them;
- as `sam build` does, every function gets its own folder ``<build-dir>/<LogicalId>/`` (functions
  that share CodeUri, Runtime and architecture are built once; the other folders are hard links of
  it, so they cost no disk space and `sam deploy` uploads the identical zip once), and
  ``<build-dir>/template.yaml`` is the template with each function's CodeUri pointing at its folder
  (and other local paths made relative to the build dir). `sam deploy` picks it up from there.

Boto3 and botocore are packaged although the Lambda runtime ships them: aws-xray-sdk needs
botocore anyway, and the versions are then the ones resolved at build time, not whatever the
runtime carries that month (about 21 MB of the ~35 MB unzipped).

Needs only pip and PyYAML (`make build` runs it in the project's venv). SAM CLI and Docker are not
used. Downloads go through pip's normal cache, so a re-run is fast and needs no new downloads.

    python tools/build_lambda.py [--template template.yaml] [--build-dir .aws-sam/build]
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeGuard

import yaml

ROOT = Path(__file__).resolve().parents[1]
FUNCTION = "AWS::Serverless::Function"
# Lambda's limit on a function's unzipped deployment package (layers included).
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
# glibc of the Lambda runtimes' OS: Amazon Linux 2023 (python3.12+), Amazon Linux 2 (older).
AL2023_GLIBC = 34
AL2_GLIBC = 26
ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
# What the Lambda package does not need, from the source tree and from the installed wheels
# (bin/: console scripts whose shebang is the build machine's Python).
SOURCE_IGNORE = ("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".DS_Store", "requirements.txt")
DEPENDENCY_JUNK = ("bin",)
# Other resources whose properties may name local files (as in SAM CLI's
# RESOURCES_WITH_LOCAL_PATHS): made relative to the build dir so the built template still finds
# them. Resources with code to build besides functions are not supported (see _check_supported).
LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Api": ["DefinitionUri"],
    "AWS::Serverless::HttpApi": ["DefinitionUri"],
    "AWS::Serverless::StateMachine": ["DefinitionUri"],
    "AWS::Serverless::Application": ["Location"],
    "AWS::StepFunctions::StateMachine": ["DefinitionS3Location"],
    "AWS::ApiGateway::RestApi": ["BodyS3Location"],
    "AWS::ApiGatewayV2::Api": ["BodyS3Location"],
    "AWS::AppSync::GraphQLSchema": ["DefinitionS3Location"],
    "AWS::AppSync::Resolver": [
        "RequestMappingTemplateS3Location",
        "ResponseMappingTemplateS3Location",
        "CodeS3Location",
    ],
    "AWS::AppSync::FunctionConfiguration": [
        "RequestMappingTemplateS3Location",
        "ResponseMappingTemplateS3Location",
        "CodeS3Location",
    ],
    "AWS::CloudFormation::Stack": ["TemplateURL"],
    "AWS::CloudFormation::StackSet": ["TemplateURL"],
}
NEEDS_SAM_BUILD = ("AWS::Serverless::LayerVersion", "AWS::Lambda::Function", "AWS::Lambda::LayerVersion")


class BuildError(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# The template (CloudFormation YAML: short-form tags read in long form, as SAM CLI does)
# ----------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


# CloudFormation has no dates: an unquoted 2012-10-17 is the string "2012-10-17".
def _timestamp_as_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_str)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Quote what YAML 1.1 readers could take for a number (account ids with a leading 0).
    if value.startswith("0"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def load_template(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise BuildError(f"{path} is not a CloudFormation template")
    return document


def dump_template(template: dict[str, Any]) -> str:
    return yaml.dump(template, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1000)


def _is_local_path(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and not re.match(r"^(s3|https?)://", value) and not os.path.isabs(value)


# ----------------------------------------------------------------------------------------------
# What to build
# ----------------------------------------------------------------------------------------------
class Function:
    def __init__(self, logical_id: str, code_uri: Path, runtime: str, architecture: str, handler: str) -> None:
        self.logical_id = logical_id
        self.code_uri = code_uri
        self.runtime = runtime
        self.architecture = architecture
        self.handler = handler

    @property
    def key(self) -> tuple[Path, str, str]:
        return self.code_uri, self.runtime, self.architecture


def functions_to_build(template: dict[str, Any], template_dir: Path) -> list[Function]:
    """The ZIP functions with local code, with their Globals applied."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    found = []
    for logical_id, resource in template["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != FUNCTION:
            continue
        properties = {**globals_, **(resource.get("Properties") or {})}
        if properties.get("PackageType", "Zip") != "Zip":
            raise BuildError(f"{logical_id}: PackageType {properties['PackageType']} is not supported; use sam build")
        if (resource.get("Metadata") or {}).get("BuildMethod"):
            raise BuildError(f"{logical_id}: Metadata.BuildMethod is not supported; use sam build")
        if "InlineCode" in properties:
            continue
        code_uri = properties.get("CodeUri")
        if not _is_local_path(code_uri):
            continue  # already in S3: nothing to build (sam build leaves it too)
        runtime = properties.get("Runtime")
        if not isinstance(runtime, str) or not re.fullmatch(r"python3\.\d+", runtime):
            raise BuildError(f"{logical_id}: Runtime {runtime!r} is not a python3.x runtime")
        architectures = properties.get("Architectures") or ["x86_64"]
        if len(architectures) != 1 or architectures[0] not in ARCHITECTURES:
            raise BuildError(f"{logical_id}: Architectures {architectures!r} is not [arm64] or [x86_64]")
        handler = properties.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise BuildError(f"{logical_id}: Handler {handler!r} is not module.function")
        source = (template_dir / code_uri).resolve()
        if not source.is_dir():
            raise BuildError(f"{logical_id}: CodeUri {code_uri} is not a directory")
        found.append(Function(logical_id, source, runtime, architectures[0], handler))
    return found


def _check_supported(template: dict[str, Any]) -> None:
    for logical_id, resource in template["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") not in NEEDS_SAM_BUILD:
            continue
        properties = resource.get("Properties") or {}
        if any(_is_local_path(properties.get(name)) for name in ("ContentUri", "Content", "Code")):
            raise BuildError(f"{logical_id}: local code for {resource['Type']} is not supported; use sam build")


def runtime_requirements(pyproject: Path) -> list[str]:
    """``[project] dependencies``: what the functions import at runtime (the extras stay out)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise BuildError(f"{pyproject} has no [project] dependencies")
    return [str(requirement) for requirement in dependencies]


def pip_platforms(runtime: str, architecture: str) -> list[str]:
    """Every manylinux tag the runtime's glibc accepts, newest first (pip prefers earlier ones).

    ``manylinux2014_aarch64`` alone (AWS's documented example) would reject wheels tagged only
    ``manylinux_2_28`` or later (more and more projects publish no older tag), although the
    runtime's glibc 2.34 loads them: pip would fall back to an older release, or fail.
    """
    machine = ARCHITECTURES[architecture]
    minor = int(runtime.removeprefix("python3."))
    glibc = AL2023_GLIBC if minor >= 12 else AL2_GLIBC
    platforms = [f"manylinux_2_{version}_{machine}" for version in range(glibc, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        platforms += [f"manylinux_2_12_{machine}", f"manylinux2010_{machine}", f"manylinux_2_5_{machine}"]
        platforms.append(f"manylinux1_{machine}")
    return platforms


def pip_command(requirements: list[str], target: Path, runtime: str, architecture: str) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", str(target), "--no-compile", "--only-binary=:all:"]
    command += ["--implementation", "cp", "--python-version", runtime.removeprefix("python")]
    for platform in pip_platforms(runtime, architecture):
        command += ["--platform", platform]
    return [*command, *requirements]


# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------
def _install_dependencies(requirements: list[str], target: Path, runtime: str, architecture: str) -> None:
    command = pip_command(requirements, target, runtime, architecture)
    print(f"  pip install ({runtime}, {architecture}): {' '.join(requirements)}", flush=True)
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"pip failed (exit {result.returncode}): it needs the package index (PyPI) to resolve "
            f"{runtime}/{architecture} wheels; see its output above.\n  {' '.join(command)}"
        )
    for name in DEPENDENCY_JUNK:
        shutil.rmtree(target / name, ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _copy_source(source: Path, target: Path) -> None:
    ignore = shutil.ignore_patterns(*SOURCE_IGNORE)
    skipped = set(ignore(str(source), os.listdir(source)))
    for entry in sorted(source.iterdir()):
        if entry.name in skipped:
            continue
        destination = target / entry.name
        if destination.exists():
            raise BuildError(f"{entry} would overwrite the dependency {destination.name} in the package")
        if entry.is_dir():
            shutil.copytree(entry, destination, ignore=ignore)
        else:
            shutil.copy2(entry, destination)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def tree_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in _files(path))


def _files(path: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(path):
        for name in names:
            yield Path(directory, name)


def _relocate_local_paths(template: dict[str, Any], template_dir: Path, build_dir: Path) -> None:
    """Make the local paths of non-function resources relative to the built template (as SAM CLI)."""

    def relocate(value: Any) -> Any:
        if not _is_local_path(value):
            return value
        return os.path.relpath((template_dir / value).resolve(), build_dir.resolve())

    for resource in template["Resources"].values():
        if not isinstance(resource, dict):
            continue
        properties = resource.get("Properties") or {}
        for name in LOCAL_PATH_PROPERTIES.get(resource.get("Type", ""), []):
            if name in properties:
                properties[name] = relocate(properties[name])

    def includes(node: Any) -> None:
        if isinstance(node, dict):
            transform = node.get("Fn::Transform")
            if isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
                parameters = transform.get("Parameters") or {}
                if "Location" in parameters:
                    parameters["Location"] = relocate(parameters["Location"])
            for value in node.values():
                includes(value)
        elif isinstance(node, list):
            for value in node:
                includes(value)

    includes(template)


def _check_replaceable(build_dir: Path) -> None:
    if build_dir.exists() and any(build_dir.iterdir()) and not (build_dir / "template.yaml").exists():
        raise BuildError(f"{build_dir} exists and is not a build (no template.yaml): not replacing it")


def _replace_dir(staging: Path, build_dir: Path) -> None:
    _check_replaceable(build_dir)
    if build_dir.exists():
        shutil.rmtree(build_dir)
    staging.rename(build_dir)


def _show(path: Path) -> str:
    """A path as the user typed it: relative to the working directory when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build(template_path: Path, build_dir: Path, pyproject: Path, log: Callable[[str], None] = print) -> dict[str, int]:
    """Build every function into ``build_dir``; returns each function's unzipped size in bytes."""
    started = time.monotonic()
    template_path = template_path.resolve()
    build_dir = build_dir.resolve()
    template = load_template(template_path)
    _check_supported(template)
    functions = functions_to_build(template, template_path.parent)
    if not functions:
        raise BuildError(f"{template_path} has no function with local code to build")
    requirements = runtime_requirements(pyproject)
    _check_replaceable(build_dir)

    build_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = build_dir.with_name(f"{build_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        built: dict[tuple[Path, str, str], Path] = {}
        for function in functions:
            folder = staging / function.logical_id
            if function.key in built:
                shutil.copytree(built[function.key], folder, copy_function=_link_or_copy)
                continue
            log(f"Building {function.logical_id} from {_show(function.code_uri)}")
            folder.mkdir()
            _install_dependencies(requirements, folder, function.runtime, function.architecture)
            _copy_source(function.code_uri, folder)
            built[function.key] = folder

        for function in functions:
            module = function.handler.rsplit(".", 1)[0].replace(".", "/")
            if not (staging / function.logical_id / f"{module}.py").is_file():
                raise BuildError(f"{function.logical_id}: Handler {function.handler}: no {module}.py in its CodeUri")

        output = copy.deepcopy(template)
        for function in functions:
            output["Resources"][function.logical_id].setdefault("Properties", {})["CodeUri"] = function.logical_id
        _relocate_local_paths(output, template_path.parent, build_dir)
        (staging / "template.yaml").write_text(dump_template(output), encoding="utf-8")
        _replace_dir(staging, build_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    sizes = {function.logical_id: tree_size(build_dir / function.logical_id) for function in functions}
    for logical_id, size in sizes.items():
        log(f"  {logical_id:<28} {size / 2**20:6.1f} MB unzipped (limit {UNZIPPED_LIMIT_BYTES // 2**20} MB)")
    too_big = [logical_id for logical_id, size in sizes.items() if size >= UNZIPPED_LIMIT_BYTES]
    if too_big:
        raise BuildError(f"over Lambda's 250 MB unzipped limit: {', '.join(too_big)}")
    log(
        f"Built {len(functions)} functions into {_show(build_dir)} in {time.monotonic() - started:.1f} s "
        f"({len(built)} distinct package(s); {sum(sizes.values()) / 2**20:.1f} MB unzipped in all)"
    )
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    try:
        build(args.template, args.build_dir, args.pyproject)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
