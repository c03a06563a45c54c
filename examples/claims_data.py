"""Synthetic vehicle-insurance claims for the `fraud-score` and `repair-cost` example models.

Everything here is generated from a fixed seed, so training is reproducible. The generative story
is deliberately simple and written down so the samples in `examples/*/samples/` can be chosen to
land where they are meant to:

* fraud is more likely when the claim is large, arrives soon after the policy started, comes from a
  short-tenure customer with earlier claims, has no police report and no witnesses, and happens at
  night;
* the repair cost is a share of the vehicle value driven by the damaged area and the impact speed,
  plus a per-part charge; older vehicles cost relatively more to repair.
"""

from __future__ import annotations

import numpy as np

FRAUD_FEATURES = (
    "claim_amount",
    "vehicle_age_years",
    "policy_tenure_months",
    "prior_claims",
    "days_since_policy_start",
    "police_report",
    "witness_count",
    "hour_of_day",
)

REPAIR_FEATURES = (
    "vehicle_value",
    "vehicle_age_years",
    "damage_area_pct",
    "impact_speed_kmh",
    "parts_count",
)


def generate_claims(n: int, seed: int) -> dict[str, np.ndarray]:
    """Return `n` synthetic claims as columns (every field of both models plus the two targets).

    Columns: the fraud and repair features, `is_fraud` (0/1) and `repair_cost` (EUR).
    """
    rng = np.random.default_rng(seed)

    claim_amount = np.clip(rng.lognormal(mean=np.log(2500.0), sigma=0.9, size=n), 150.0, 60_000.0)
    vehicle_age_years = rng.integers(0, 21, size=n)
    policy_tenure_months = np.minimum(rng.exponential(scale=40.0, size=n), 240.0).astype(int)
    prior_claims = np.minimum(rng.poisson(lam=0.5, size=n), 6)
    days_since_policy_start = rng.integers(0, 366, size=n)
    police_report = (rng.random(n) < 0.6).astype(int)
    witness_count = np.minimum(rng.poisson(lam=1.0, size=n), 5)
    hour_of_day = rng.integers(0, 24, size=n)

    logit = (
        -4.2
        + 0.9 * np.log(claim_amount / 2500.0)
        + 1.6 * (days_since_policy_start < 30)
        + 0.9 * (policy_tenure_months < 6)
        + 0.55 * prior_claims
        + 1.3 * (1 - police_report)
        + 0.7 * (witness_count == 0)
        + 0.9 * ((hour_of_day <= 4) | (hour_of_day >= 23))
    )
    is_fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)

    vehicle_value = np.clip(
        rng.lognormal(mean=np.log(18_000.0), sigma=0.55, size=n) * (1.0 - 0.035 * vehicle_age_years),
        1_500.0,
        120_000.0,
    )
    damage_area_pct = np.clip(rng.beta(1.4, 3.0, size=n) * 100.0, 0.5, 100.0)
    impact_speed_kmh = np.clip(damage_area_pct * 0.9 + rng.normal(0.0, 18.0, size=n), 0.0, 160.0)
    parts_count = np.clip(np.round(1 + damage_area_pct / 6.0 + rng.normal(0.0, 2.0, size=n)), 1, 30)

    share = (0.004 * damage_area_pct + 0.0035 * np.maximum(impact_speed_kmh - 15.0, 0.0)) * (
        1.0 + 0.02 * vehicle_age_years
    )
    repair_cost = (vehicle_value * share + parts_count * (60.0 + 0.003 * vehicle_value) + 150.0) * rng.lognormal(
        0.0, 0.10, size=n
    )

    return {
        "claim_amount": np.round(claim_amount, 2),
        "vehicle_age_years": vehicle_age_years,
        "policy_tenure_months": policy_tenure_months,
        "prior_claims": prior_claims,
        "days_since_policy_start": days_since_policy_start,
        "police_report": police_report,
        "witness_count": witness_count,
        "hour_of_day": hour_of_day,
        "vehicle_value": np.round(vehicle_value, 2),
        "damage_area_pct": np.round(damage_area_pct, 1),
        "impact_speed_kmh": np.round(impact_speed_kmh, 1),
        "parts_count": parts_count.astype(int),
        "is_fraud": is_fraud,
        "repair_cost": np.round(repair_cost, 2),
    }


def matrix(columns: dict[str, np.ndarray], features: tuple[str, ...]) -> np.ndarray:
    """Stack the named columns into a float matrix in the given feature order."""
    return np.column_stack([columns[f].astype(float) for f in features])
