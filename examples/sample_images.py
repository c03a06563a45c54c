"""Synthetic vehicle-damage photos for the `damage-severity` example model.

`make_damage_photo(severity, seed)` draws a small side view of a car (body, cabin, windows,
wheels) on a sky/road background, then damages it: dark blotches (dents and burnt paint), scratch
lines and, for severe damage, a torn-off panel. The number, size and darkness of the damage grow
with severity, with overlapping ranges so the classes are not trivially separable. The same
function feeds training (`examples/train.py`) and the committed sample PNGs
(`examples/make_samples.py`), so both come from one definition.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

SEVERITIES = ("minor", "moderate", "severe")
SIZE = 64

# Mid to light paint colours: the damage must stay darker than the paint.
_PAINTS = (
    (196, 40, 40),
    (40, 90, 190),
    (190, 190, 195),
    (235, 235, 235),
    (40, 140, 70),
    (225, 190, 40),
    (150, 150, 160),
    (200, 110, 40),
)

# Per severity: blotch count range, blotch radius range, darkness (share of paint colour kept),
# scratch count range, chance of a torn-off panel.
_DAMAGE = {
    "minor": {
        "blotches": (1, 3),
        "radius": (1.5, 3.5),
        "keep": (0.45, 0.75),
        "scratches": (0, 2),
        "panel": 0.0,
    },
    "moderate": {
        "blotches": (2, 5),
        "radius": (2.5, 5.0),
        "keep": (0.25, 0.55),
        "scratches": (1, 4),
        "panel": 0.15,
    },
    "severe": {
        "blotches": (4, 9),
        "radius": (3.5, 7.5),
        "keep": (0.05, 0.35),
        "scratches": (2, 6),
        "panel": 0.7,
    },
}


def make_damage_photo(severity: str, seed: int) -> bytes:
    """Return a deterministic 64x64 PNG of a car with `severity` damage (minor, moderate, severe)."""
    if severity not in _DAMAGE:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    rng = np.random.default_rng([seed, SEVERITIES.index(severity)])
    image = _draw(rng, _DAMAGE[severity])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _draw(rng: np.random.Generator, damage: dict) -> Image.Image:
    def uniform(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    def integer(low: int, high: int) -> int:  # inclusive
        return int(rng.integers(low, high + 1))

    sky = tuple(int(v) for v in rng.integers(170, 236, size=3))
    road = integer(95, 140)
    image = Image.new("RGB", (SIZE, SIZE), sky)
    draw = ImageDraw.Draw(image)
    horizon = integer(38, 44)
    draw.rectangle([0, horizon, SIZE, SIZE], fill=(road, road, road + 5))

    # Car geometry, jittered.
    x0 = integer(4, 9)
    x1 = SIZE - integer(4, 9)
    body_top = integer(28, 32)
    body_bottom = body_top + integer(13, 16)
    base = _PAINTS[integer(0, len(_PAINTS) - 1)]
    paint = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in base)
    cabin_x0 = x0 + integer(9, 13)
    cabin_x1 = x1 - integer(10, 15)
    cabin_top = body_top - integer(9, 12)
    draw.rounded_rectangle([cabin_x0, cabin_top, cabin_x1, body_top + 2], radius=4, fill=paint)
    draw.rounded_rectangle([x0, body_top, x1, body_bottom], radius=4, fill=paint)
    glass = (150, 185, 210)
    mid = (cabin_x0 + cabin_x1) // 2
    draw.rectangle([cabin_x0 + 3, cabin_top + 3, mid - 1, body_top], fill=glass)
    draw.rectangle([mid + 1, cabin_top + 3, cabin_x1 - 3, body_top], fill=glass)
    wheel_r = integer(5, 6)
    for wheel_x in (x0 + 10, x1 - 10):
        draw.ellipse(
            [wheel_x - wheel_r, body_bottom - wheel_r, wheel_x + wheel_r, body_bottom + wheel_r],
            fill=(25, 25, 28),
        )
        draw.ellipse([wheel_x - 2, body_bottom - 2, wheel_x + 2, body_bottom + 2], fill=(160, 160, 165))

    # Damage on the body and cabin.
    def on_car() -> tuple[float, float]:
        return uniform(x0 + 2, x1 - 2), uniform(cabin_top + 2, body_bottom - 3)

    if rng.random() < damage["panel"]:
        px, py = on_car()
        w, h = uniform(6, 13), uniform(4, 8)
        points = [(px + uniform(-w, w), py + uniform(-h, h)) for _ in range(5)]
        draw.polygon(points, fill=tuple(integer(15, 45) for _ in range(3)))
    for _ in range(integer(*damage["blotches"])):
        cx, cy = on_car()
        r = uniform(*damage["radius"])
        keep = uniform(*damage["keep"])
        colour = tuple(int(c * keep) for c in paint)
        draw.ellipse([cx - r, cy - r * uniform(0.6, 1.0), cx + r, cy + r * uniform(0.6, 1.0)], fill=colour)
    for _ in range(integer(*damage["scratches"])):
        sx, sy = on_car()
        ex, ey = sx + uniform(-12, 12), sy + uniform(-4, 4)
        shade = integer(20, 70)
        draw.line([sx, sy, ex, ey], fill=(shade, shade, shade), width=1)

    # Sensor noise.
    pixels = np.asarray(image, dtype=np.int16)
    pixels = pixels + rng.normal(0.0, 5.0, size=pixels.shape).round().astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
