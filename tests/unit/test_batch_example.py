"""examples/make_batch.py: the 1,000-complaint manifest of the README's batch example."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("numpy", reason="the example corpus needs the 'examples' extra")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_batch = _load("make_batch")


def test_the_manifest_is_1000_varied_complaints_the_same_every_run(tmp_path: Path) -> None:
    # WHEN the default manifest is written twice
    first = make_batch.write_manifest(tmp_path / "a.jsonl")
    second = make_batch.write_manifest(tmp_path / "b.jsonl")

    # THEN the same bytes, 1,000 lines, each the complaint-triage input {"text": "..."}
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    documents = [json.loads(line) for line in lines]
    assert all(set(d) == {"text"} and isinstance(d["text"], str) and d["text"].strip() for d in documents)
    # AND varied: (nearly) all different, of every product, some with a vulnerability cue
    assert len({d["text"] for d in documents}) > 990
    corpus = make_batch.generate_corpus(1000, seed=make_batch.BATCH_SEED)
    assert {c["product"] for c in corpus} == {
        "mortgage",
        "credit-card",
        "current-account",
        "car-insurance",
        "home-insurance",
    }
    assert 250 < sum(c["vulnerability"] == "vulnerable" for c in corpus) < 450


def test_its_seed_is_none_of_the_training_seeds() -> None:
    train_seed = 20240601  # examples/train.py SEED; the triage models use SEED + 5 and SEED + 6
    assert make_batch.BATCH_SEED not in (train_seed + 5, train_seed + 6)


def test_bad_lines_are_spread_through_the_file_and_the_others_kept() -> None:
    # WHEN 3 of 50 lines are asked to be bad
    lines = make_batch.manifest_lines(50, bad_lines=3)
    clean = make_batch.manifest_lines(50)

    # THEN lines 13, 26 and 38 (1-based) are the three kinds, every other line as in the clean file
    bad = [index for index, (line, original) in enumerate(zip(lines, clean, strict=True)) if line != original]
    assert [index + 1 for index in bad] == [13, 26, 38]
    assert [lines[index] for index in bad] == list(make_batch.BAD_LINES)
    with pytest.raises(ValueError):
        json.loads(lines[bad[0]])


def test_the_script_writes_where_it_is_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert make_batch.main(["-n", "5", "-o", str(tmp_path / "five.jsonl")]) == 0
    assert len((tmp_path / "five.jsonl").read_text().splitlines()) == 5
    assert "5 lines (0 bad)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        make_batch.main(["-n", "5", "--bad-lines", "5"])
