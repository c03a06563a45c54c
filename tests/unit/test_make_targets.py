"""The make targets of the tests: every test file is in exactly one of `make unit`, `make
integration` and `make e2e`, and `make test` runs all of tests/ in one pytest run (so that the
fault-injection figures print at the end, after everything)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"unit": "UNIT_TESTS", "integration": "INTEGRATION_TESTS", "e2e": "E2E_TESTS"}


def makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")


def variable(name: str) -> list[str]:
    match = re.search(rf"^{name}\s*:=(.*)$", makefile(), re.MULTILINE)
    assert match, f"no {name} in the Makefile"
    return match[1].split()


def recipe(target: str) -> list[str]:
    match = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)*)", makefile(), re.MULTILINE)
    assert match, f"no target {target} in the Makefile"
    return [line.strip() for line in match[1].splitlines()]


def test_every_test_file_is_in_exactly_one_kind() -> None:
    # GIVEN the paths of each kind, and every test file under tests/
    kinds = {kind: variable(name) for kind, name in KINDS.items()}
    files = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").rglob("test_*.py"))
    assert files

    # WHEN each file is matched to the kinds whose paths hold it
    owners = {
        file: [kind for kind, paths in kinds.items() for path in paths if file == path or file.startswith(f"{path}/")]
        for file in files
    }

    # THEN each file has exactly one, and every path listed exists
    assert {file: found for file, found in owners.items() if len(found) != 1} == {}
    assert [path for paths in kinds.values() for path in paths if not (ROOT / path).exists()] == []


def test_each_kind_runs_alone_and_make_test_runs_all_of_tests_in_one_run() -> None:
    # GIVEN pytest's configuration
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]

    # WHEN the recipes of the test targets are read
    recipes = {target: recipe(target) for target in [*KINDS, "test"]}

    # THEN each kind runs its own paths, and `make test` runs pytest's testpaths, tests/, once
    assert {kind: recipes[kind] for kind in KINDS} == {
        kind: [f"$(BIN)/pytest $({name})"] for kind, name in KINDS.items()
    }
    assert recipes["test"] == ["$(BIN)/pytest"]
    assert options["testpaths"] == ["tests"]


def test_test_modules_outside_packages_have_unique_names() -> None:
    # GIVEN the test files of directories without __init__.py (pytest imports them by basename)
    loose = [path for path in (ROOT / "tests").rglob("test_*.py") if not (path.parent / "__init__.py").exists()]

    # WHEN they are grouped by file name
    by_name: dict[str, list[str]] = {}
    for path in loose:
        by_name.setdefault(path.name, []).append(path.relative_to(ROOT).as_posix())

    # THEN no two share one: `make test` collects them all in one run, where they would clash
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
