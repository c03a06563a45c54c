"""Train the example models deterministically on synthetic data the project generates.

    python examples/train.py [--force] [--root DIR]

Each trained model is written to `<root>/<model-name>/model/` (default root `examples/models`,
gitignored), next to its committed `code/inference.py`, which is what a SageMaker-compatible runtime
loads (`model_fn(model_dir)` reads `model_dir/model/...`). A model whose artefacts are present is
skipped unless `--force`. One line is printed per model with its held-out metric.

A later version of a model has a directory of its own, `<model-name>-<version>` (the same
`code/inference.py`, other training settings): `triage-product-1.1.0`, the canary of the demo, and
`fraud-score-1.1.0`, its shadow. Its `metadata.json` names the model and the version, so its
outputs say which version answered.

Everything uses fixed seeds and single-threaded estimators, so two runs give identical predictions.
The models without training (claim-decision, echo, always-fails, slow-noop) need no artefacts.

Programmatic use: `train_all(force=False, root=None) -> list[str]` (the names it trained).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import json
import math
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent
MODELS_DIR = EXAMPLES_DIR / "models"
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

import claims_data  # noqa: E402
import sample_images  # noqa: E402
import triage_corpus  # noqa: E402

SEED = 20240601
# Model directory -> the version it holds.
VERSIONS = {
    "fraud-score": "1.0.0",
    "fraud-score-1.1.0": "1.1.0",
    "repair-cost": "1.0.0",
    "damage-severity": "1.0.0",
    "triage-product": "1.0.0",
    "triage-product-1.1.0": "1.1.0",
    "triage-issue": "1.0.0",
    "triage-vulnerable": "1.0.0",
}
# Model directories holding a later version of a model: directory -> the model (the catalog service).
VERSION_OF = {
    "fraud-score-1.1.0": "fraud-score",
    "triage-product-1.1.0": "triage-product",
}
# Model directory -> corpus column (the task) for the complaint-triage classifiers.
TRIAGE_MODELS = {
    "triage-product": "product",
    "triage-product-1.1.0": "product",
    "triage-issue": "issue",
    "triage-vulnerable": "vulnerability",
}
# The training settings of each version. 1.1.0 of fraud-score: more, shallower-learning trees on
# a subsample of rows and features; 1.1.0 of triage-product: word n-grams up to three, every term
# kept, and a stronger regularisation (a smaller C), so its scores are softer.
FRAUD_SETTINGS: dict[str, dict[str, Any]] = {
    "fraud-score": {"n_estimators": 80, "max_depth": 3, "learning_rate": 0.15, "subsample": 1.0},
    "fraud-score-1.1.0": {
        "n_estimators": 160,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.75,
    },
}
TRIAGE_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {"ngram_range": [1, 2], "min_df": 2, "C": 4.0},
    "triage-product-1.1.0": {"ngram_range": [1, 3], "min_df": 1, "C": 1.0},
}
METADATA_FILE = "metadata.json"


def model_name(directory: str) -> str:
    """The model (catalog service) a model directory holds a version of."""
    return VERSION_OF.get(directory, directory)


def load_inference(name: str) -> ModuleType:
    """Import `examples/models/<name>/code/inference.py` (the committed handler code) as a module."""
    module_name = "example_inference_" + name.replace("-", "_").replace(".", "_")
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = MODELS_DIR / name / "code" / "inference.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# --- fraud-score --------------------------------------------------------------------------------


def train_fraud_score(out: Path, name: str = "fraud-score") -> dict[str, Any]:
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    features = load_inference(name).FEATURES
    assert tuple(features) == claims_data.FRAUD_FEATURES
    train = claims_data.generate_claims(6000, seed=SEED + 1)
    test = claims_data.generate_claims(2000, seed=SEED + 2)
    settings = FRAUD_SETTINGS[name]
    classifier = xgb.XGBClassifier(
        **settings,
        tree_method="hist",
        n_jobs=1,
        random_state=0,
        eval_metric="logloss",
    )
    classifier.fit(claims_data.matrix(train, features).astype(np.float32), train["is_fraud"])
    classifier.get_booster().feature_names = list(features)
    classifier.get_booster().save_model(str(out / "model.json"))
    scores = classifier.predict_proba(claims_data.matrix(test, features).astype(np.float32))[:, 1]
    return {
        "features": list(features),
        "settings": settings,
        "metrics": {
            "roc_auc": round(float(roc_auc_score(test["is_fraud"], scores)), 4),
            "fraud_rate": round(float(test["is_fraud"].mean()), 4),
        },
    }


# --- repair-cost --------------------------------------------------------------------------------


def train_repair_cost(out: Path) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.metrics import mean_absolute_error, r2_score

    features = load_inference("repair-cost").FEATURES
    assert tuple(features) == claims_data.REPAIR_FEATURES
    train = claims_data.generate_claims(2500, seed=SEED + 3)
    test = claims_data.generate_claims(1500, seed=SEED + 4)
    regressor = GradientBoostingRegressor(
        n_estimators=150,
        max_depth=3,
        learning_rate=0.1,
        subsample=1.0,
        random_state=0,
    )
    regressor.fit(claims_data.matrix(train, features), np.log1p(train["repair_cost"]))
    _pickle(regressor, out / "model.pkl")
    predicted = np.expm1(regressor.predict(claims_data.matrix(test, features)))
    actual = test["repair_cost"]
    return {
        "features": list(features),
        "metrics": {
            "mae_eur": round(float(mean_absolute_error(actual, predicted)), 2),
            "mape": round(float(np.mean(np.abs(predicted - actual) / actual)), 4),
            "r2": round(float(r2_score(actual, predicted)), 4),
        },
    }


# --- damage-severity ----------------------------------------------------------------------------


def _photo_dataset(per_class: int, first_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of synthetic photos; every third one goes through JPEG, as clients may send JPEG."""
    from PIL import Image

    image_features = load_inference("damage-severity").image_features
    rows, labels = [], []
    for severity in sample_images.SEVERITIES:
        for seed in range(first_seed, first_seed + per_class):
            photo = sample_images.make_damage_photo(severity, seed)
            if seed % 3 == 0:
                buffer = io.BytesIO()
                Image.open(io.BytesIO(photo)).save(buffer, format="JPEG", quality=70 + seed % 25)
                photo = buffer.getvalue()
            rows.append(image_features(photo))
            labels.append(severity)
    return np.asarray(rows), np.asarray(labels)


def train_damage_severity(out: Path) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, f1_score

    x_train, y_train = _photo_dataset(per_class=100, first_seed=0)
    x_test, y_test = _photo_dataset(per_class=50, first_seed=1000)  # sample PNGs use seeds >= 10000
    classifier = RandomForestClassifier(n_estimators=120, max_depth=10, min_samples_leaf=2, n_jobs=1, random_state=0)
    classifier.fit(x_train, y_train)
    _pickle(classifier, out / "model.pkl")
    predicted = classifier.predict(x_test)
    return {
        "labels": list(sample_images.SEVERITIES),
        "metrics": {
            "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
            "macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 4),
        },
    }


# --- complaint triage ---------------------------------------------------------------------------


@functools.cache
def _triage_split() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    return (
        triage_corpus.generate_corpus(2000, seed=SEED + 5),
        triage_corpus.generate_corpus(600, seed=SEED + 6),
    )


def _train_triage(name: str, out: Path) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import Pipeline

    task = TRIAGE_MODELS[name]
    settings = TRIAGE_SETTINGS.get(name, TRIAGE_SETTINGS["default"])
    train, test = _triage_split()
    low, high = settings["ngram_range"]
    pipeline = Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(ngram_range=(low, high), min_df=settings["min_df"], sublinear_tf=True, lowercase=True),
            ),
            ("classifier", LogisticRegression(C=settings["C"], solver="newton-cg", max_iter=1000)),
        ]
    )
    pipeline.fit([doc["text"] for doc in train], [doc[task] for doc in train])
    # Introspection only, and a set whose pickled order follows string hashing (random per process):
    # drop it so the artefact is byte-for-byte reproducible (and smaller).
    pipeline.named_steps["tfidf"].stop_words_ = None
    _pickle(pipeline, out / "model.pkl")
    predicted = pipeline.predict([doc["text"] for doc in test])
    actual = [doc[task] for doc in test]
    return {
        "task": task,
        "labels": list(triage_corpus.TASKS[task]),
        "settings": settings,
        "metrics": {
            "accuracy": round(float(accuracy_score(actual, predicted)), 4),
            "macro_f1": round(float(f1_score(actual, predicted, average="macro")), 4),
        },
    }


# --- driver -------------------------------------------------------------------------------------

TRAINERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    **{name: functools.partial(train_fraud_score, name=name) for name in FRAUD_SETTINGS},
    "repair-cost": train_repair_cost,
    "damage-severity": train_damage_severity,
    **{name: functools.partial(_train_triage, name) for name in TRIAGE_MODELS},
}


def is_trained(name: str, root: Path | str | None = None) -> bool:
    return (Path(root or MODELS_DIR) / name / "model" / METADATA_FILE).is_file()


def train_all(
    force: bool = False, root: Path | str | None = None, log: Callable[[str], None] | None = print
) -> list[str]:
    """Train every model whose artefacts are absent (all of them with `force`) under `root`.

    Returns the names of the models trained. `metadata.json` is written last, so a model whose
    training was interrupted is trained again next time.
    """
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    root = Path(root or MODELS_DIR)
    trained = []
    # One BLAS/OpenMP thread: faster for these small problems on 2 cores, and the same arithmetic
    # order on every machine.
    with threadpool_limits(limits=1):
        for name, trainer in TRAINERS.items():
            if _train_one(name, trainer, root, force, log):
                trained.append(name)
    return trained


def _train_one(
    name: str,
    trainer: Callable[[Path], dict[str, Any]],
    root: Path,
    force: bool,
    log: Callable[[str], None] | None,
) -> bool:
    out = root / name / "model"
    if not force and is_trained(name, root):
        if log:
            log(f"{name:<20} present, skipped ({out})")
        return False
    out.mkdir(parents=True, exist_ok=True)
    (out / METADATA_FILE).unlink(missing_ok=True)
    started = time.perf_counter()
    details = trainer(out)
    elapsed = time.perf_counter() - started
    metadata = {"model": model_name(name), "version": VERSIONS[name], **details}
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    if log:
        metrics = ", ".join(f"{key}={_fmt(value)}" for key, value in details["metrics"].items())
        log(f"{name:<20} {metrics} (held-out; trained in {elapsed:.2f} s)")
    return True


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 100 or math.isclose(value, round(value)) else f"{value:.4f}"


def _pickle(obj: Any, path: Path) -> None:
    with path.open("wb") as file:
        pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="retrain models whose artefacts are present")
    parser.add_argument(
        "--root",
        type=Path,
        default=MODELS_DIR,
        help="where to write <model-name>/model/ (default: examples/models)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    trained = train_all(force=args.force, root=args.root)
    print(f"trained {len(trained)} model(s) in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
