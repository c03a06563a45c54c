"""damage-severity: classifies a photo of a damaged vehicle as minor, moderate or severe.

SageMaker inference-toolkit handlers. The model directory holds `model/model.pkl` (a scikit-learn
classifier over `image_features`) and `model/metadata.json`, written by `examples/train.py`, which
uses `image_features` from this module so training and serving share one feature definition.

Input: the photo bytes as image/png or image/jpeg. For ensembles whose upload is one JSON
document, application/json `{"photo": "<base64 PNG or JPEG>"}` is accepted too (other keys are
ignored, so a whole vehicle-claim document can be passed through).
Output: `{"severity", "probabilities": {severity: probability}, "model", "version"}`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

CONTENT_TYPES = ("image/png", "image/jpeg", "application/json")
FEATURE_SIZE = 64
MAX_PIXELS = 40_000_000  # refuse decompression bombs long before Pillow's own limit


def model_fn(model_dir: str) -> dict[str, Any]:
    root = Path(model_dir) / "model"
    if not (root / "metadata.json").is_file():
        raise FileNotFoundError(f"no trained model in {root}: run python examples/train.py")
    metadata = json.loads((root / "metadata.json").read_text())
    with (root / "model.pkl").open("rb") as file:
        classifier = pickle.load(file)  # our own artefact, written by examples/train.py
    return {"classifier": classifier, "model": metadata["model"], "version": metadata["version"]}


def input_fn(request_body: bytes, request_content_type: str) -> np.ndarray:
    media_type = _media_type(request_content_type)
    if media_type not in CONTENT_TYPES:
        raise ValueError(
            f"unsupported content type {request_content_type!r}: damage-severity accepts image/png, "
            'image/jpeg, or application/json {"photo": "<base64 image>"}'
        )
    if media_type == "application/json":
        request_body = _photo_from_json(request_body)
    elif isinstance(request_body, str):
        raise ValueError(f"{media_type} body must be bytes, not text")
    return image_features(request_body).reshape(1, -1)


def predict_fn(input_data: np.ndarray, model: dict[str, Any]) -> dict[str, Any]:
    classifier = model["classifier"]
    probabilities = classifier.predict_proba(input_data)[0]
    labels = [str(label) for label in classifier.classes_]
    best = int(np.argmax(probabilities))
    return {
        "severity": labels[best],
        "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probabilities, strict=True)},
        "model": model["model"],
        "version": model["version"],
    }


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    if _media_type(accept) not in ("", "*/*", "application/json"):
        raise ValueError(f"unsupported accept type {accept!r}: damage-severity answers application/json")
    return json.dumps(prediction)


def image_features(image_bytes: bytes) -> np.ndarray:
    """Simple photo features: grey-level histogram, dark-pixel ratios and edge densities."""
    try:
        image = Image.open(io.BytesIO(image_bytes), formats=["PNG", "JPEG"])
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"image is too large ({image.width}x{image.height} pixels)")
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise ValueError(f"the body is not a readable PNG or JPEG image: {error}") from None
    small = image.convert("RGB").resize((FEATURE_SIZE, FEATURE_SIZE), Image.Resampling.BILINEAR)
    grey = np.asarray(small.convert("L"), dtype=np.float64) / 255.0

    histogram = np.histogram(grey, bins=16, range=(0.0, 1.0))[0] / grey.size
    gx = np.abs(np.diff(grey, axis=1))[:-1, :]
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]
    magnitude = np.sqrt(gx**2 + gy**2)
    band = grey[14:40, :]  # the car's body and cabin, above the wheels
    band_magnitude = magnitude[14:40, :]
    return np.concatenate(
        [
            histogram,
            [
                (grey < 0.25).mean(),
                (grey < 0.12).mean(),
                (band < 0.25).mean(),
                (band < 0.12).mean(),
                (magnitude > 0.12).mean(),
                (magnitude > 0.25).mean(),
                (band_magnitude > 0.12).mean(),
                grey.mean(),
                grey.std(),
                band.std(),
            ],
        ]
    )


def _photo_from_json(body: bytes | str) -> bytes:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"request body is not valid JSON: {error}") from None
    photo = document.get("photo") if isinstance(document, dict) else None
    if not isinstance(photo, str) or not photo:
        raise ValueError('expected a JSON object with a "photo" field holding a base64 PNG or JPEG')
    if photo.startswith("data:") and "," in photo:  # a data URL: data:image/png;base64,....
        photo = photo.split(",", 1)[1]
    try:
        return base64.b64decode(photo, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError('the "photo" field is not valid base64') from None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()
