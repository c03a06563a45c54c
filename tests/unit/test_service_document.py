"""GET /services entries: what a client needs to know about a service before predicting."""

from __future__ import annotations

from gateway_fakes import model_service

from ensemble_gateway.domain.api import ServiceDocument
from ensemble_gateway.domain.models import Service


def test_an_ensemble_entry_names_its_steps_in_catalog_order_and_a_model_none() -> None:
    # GIVEN an ensemble of three steps and a model
    ensemble = Service.model_validate(
        {
            "name": "claim",
            "kind": "ensemble",
            "ensemble": {
                "steps": {
                    "fraud": {"service": "fraud-score", "mapping": {"x": "$.input.x"}},
                    "cost": {"service": "repair-cost", "mapping": {"x": "$.input.x"}},
                    "decision": {"service": "echo", "mapping": {"f": "$.steps.fraud.output"}},
                },
                "output": "decision",
            },
        }
    )
    # WHEN their documents are built
    # THEN the ensemble's lists its steps as the catalog orders them; the model's lists none
    assert ServiceDocument.of(ensemble).steps == ["fraud", "cost", "decision"]
    assert ServiceDocument.of(model_service("fraud-score")).steps is None
