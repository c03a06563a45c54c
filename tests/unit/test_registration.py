"""Registering services: ensembles are validated against their ASL before anything is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.admin import load_services
from ensemble_gateway.domain.errors import CatalogValidationError
from ensemble_gateway.domain.models import Service
from ensemble_gateway.domain.registration import STEP_TIMEOUT_MARGIN_SECONDS, Registrar

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:get-transform-call"
ROLE_ARN = "arn:aws:iam::123456789012:role/ensembles"


class FakeCatalog:
    """The service catalog, in memory."""

    def __init__(self, services: list[Service] | None = None) -> None:
        self.services = {s.name: s for s in services or []}

    def get(self, name: str) -> Service | None:
        return self.services.get(name)

    def list(self, active_only: bool = True) -> list[Service]:
        return [s for s in self.services.values() if s.active or not active_only]

    def put(self, service: Service) -> None:
        self.services[service.name] = service


class FakeStateMachines:
    """Standard state machines by name, in memory, answering ARNs as Step Functions does."""

    def __init__(self) -> None:
        self.machines: dict[str, dict[str, str]] = {}

    def create_or_update(self, name: str, definition: str, role_arn: str) -> str:
        json.loads(definition)  # what is deployed must be JSON
        self.machines[name] = {"definition": definition, "role_arn": role_arn}
        return self.arn(name)

    @staticmethod
    def arn(name: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"

    def definition(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.machines[name]["definition"]))


class Files:
    """ASL files: the project's own, plus texts a test adds under made-up names."""

    def __init__(self) -> None:
        self.extra: dict[str, str] = {}

    def __call__(self, relative: str) -> str:
        if relative in self.extra:
            return self.extra[relative]
        return (ROOT / relative).read_text(encoding="utf-8")


def example_services() -> dict[str, Service]:
    """The example catalog's services by name: each one's first entry (its first version)."""
    services: dict[str, Service] = {}
    for service in load_services(ROOT / "examples" / "catalog.json"):
        services.setdefault(service.name, service)
    return services


MODELS = [s for s in example_services().values() if s.kind == "model"]


def make_registrar(catalog: list[Service] | None = None) -> tuple[Registrar, FakeCatalog, FakeStateMachines]:
    fake_catalog = FakeCatalog(catalog if catalog is not None else MODELS)
    machines = FakeStateMachines()
    registrar = Registrar(
        catalog=fake_catalog,
        machines=machines,
        read_definition=Files(),
        substitutions={"GetTransformCallFunctionArn": FUNCTION_ARN},
        name_prefix="eg",
        role_arn=ROLE_ARN,
    )
    return registrar, fake_catalog, machines


# The example ensembles as hand-written state machines: these tests check what registration checks
# of hand-written ASL (the escape hatch); tests/unit/test_ensemble_dag.py covers the declarative form.
HAND_WRITTEN = {
    "vehicle-claim": "tests/fixtures/statemachines/vehicle-claim.asl.json",
    "complaint-triage": "statemachines/complaint-triage.asl.json",
}


def ensemble(name: str, **changes: Any) -> Service:
    """An example ensemble on its hand-written ASL, with its ``ensemble`` section changed."""
    document = example_services()[name].model_dump()
    document["ensemble"].update(definition=HAND_WRITTEN[name], output=None)
    for step in document["ensemble"]["steps"].values():
        step["when"] = None
    document["ensemble"].update(copy.deepcopy(changes))
    return Service.model_validate(document)


def vehicle_claim_steps(**steps: dict[str, Any] | None) -> dict[str, Any]:
    """vehicle-claim's steps with some replaced (None removes one)."""
    result = ensemble("vehicle-claim").model_dump()["ensemble"]["steps"]
    for step, value in steps.items():
        if value is None:
            result.pop(step)
        else:
            result[step] = value
    return dict(result)


def snapshot(catalog: FakeCatalog, machines: FakeStateMachines) -> tuple[Any, Any]:
    return copy.deepcopy(catalog.services), copy.deepcopy(machines.machines)


def reject(registrar: Registrar, services: list[Service], *fragments: str) -> str:
    """Apply ``services``; assert it is refused naming every fragment and that nothing was written."""
    catalog, machines = registrar.catalog, registrar.machines
    assert isinstance(catalog, FakeCatalog) and isinstance(machines, FakeStateMachines)
    before = snapshot(catalog, machines)
    with pytest.raises(CatalogValidationError) as caught:
        registrar.apply(services)
    message = caught.value.message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert snapshot(catalog, machines) == before, "a rejected batch changed the catalog or the machines"
    return message


def callback_timeouts(definition: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}

    def visit(states: dict[str, Any]) -> None:
        for state in states.values():
            if str(state.get("Resource", "")).endswith("waitForTaskToken"):
                found[state["Parameters"]["Payload"]["step"]] = state["TimeoutSeconds"]
            for inner in state.get("Branches", []):
                visit(inner["States"])
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                visit(processor["States"])

    visit(definition["States"])
    return found


# -- accepted ------------------------------------------------------------------------------------


def test_the_example_catalog_registers_with_state_machines_and_step_timeouts():
    # GIVEN an empty catalog and the example catalog file (models and both ensembles)
    registrar, catalog, machines = make_registrar(catalog=[])
    services = list(example_services().values())

    # WHEN the whole file is applied
    registered = registrar.apply(services)

    # THEN every service is in the catalog and each ensemble has its state machine's ARN
    assert set(catalog.services) == {s.name for s in services}
    by_name = {s.name: s for s in registered}
    for name in ("vehicle-claim", "complaint-triage"):
        spec = catalog.services[name].ensemble
        assert spec is not None
        assert spec.state_machine_arn == FakeStateMachines.arn(f"eg-{name}")
        assert by_name[name].ensemble == spec
        assert machines.machines[f"eg-{name}"]["role_arn"] == ROLE_ARN
    # AND each callback task waits for its target's own timeout plus the margin (real time: 60 s)
    margin = STEP_TIMEOUT_MARGIN_SECONDS
    assert callback_timeouts(machines.definition("eg-vehicle-claim")) == {
        "damage": 600 + 300 + margin,
        "cost": 60 + margin,
        "fraud": 600 + 300 + margin,
        "decision": 60 + margin,
    }
    assert callback_timeouts(machines.definition("eg-complaint-triage")) == {
        "vulnerability": 600 + 300 + margin,
        "escalate": 60 + margin,
        "classify": 600 + 300 + margin,
    }
    # AND the DefinitionSubstitutions are filled in
    deployed = machines.machines["eg-vehicle-claim"]["definition"]
    assert "${" not in deployed and FUNCTION_ARN in deployed
    # AND the step that ends each ensemble is known (triage's classify fan-out runs beside
    # vulnerability → escalate, so its Complete task finishes it)
    assert catalog.services["vehicle-claim"].ensemble.final_step == "decision"  # type: ignore[union-attr]
    assert catalog.services["complaint-triage"].ensemble.final_step is None  # type: ignore[union-attr]


def test_a_fan_out_step_waits_for_its_slowest_member_including_ones_of_the_same_batch():
    # GIVEN a new classifier of the fan-out task with a long invocation timeout, in the same batch
    registrar, _, machines = make_registrar()
    slow = Service.model_validate(
        {
            "name": "triage-slow",
            "kind": "model",
            "tasks": ["complaint-classification"],
            "model": {"endpoint_name": "triage-slow", "invocation_timeout_seconds": 1800},
        }
    )

    # WHEN it is registered with complaint-triage
    registrar.apply([slow, example_services()["complaint-triage"]])

    # THEN classify waits for the slowest member
    timeouts = callback_timeouts(machines.definition("eg-complaint-triage"))
    assert timeouts["classify"] == 3600 + 1800 + STEP_TIMEOUT_MARGIN_SECONDS  # default queue time + its timeout


def test_an_ensemble_step_waits_for_the_nested_ensembles_timeout():
    # GIVEN vehicle-claim registered, and an ensemble calling it (a copy of its DAG)
    registrar, _, machines = make_registrar()
    registrar.apply([example_services()["vehicle-claim"]])
    outer = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"service": "vehicle-claim", "mapping": {"$raw": "input"}}),
        timeout_seconds=7200,
    ).model_copy(update={"name": "claim-wrapper"})

    # WHEN the outer ensemble is registered
    registrar.apply([outer])

    # THEN its step calling the nested ensemble waits for that ensemble's timeout plus the margin
    timeouts = callback_timeouts(machines.definition("eg-claim-wrapper"))
    assert timeouts["decision"] == 3600 + STEP_TIMEOUT_MARGIN_SECONDS


def test_registering_the_same_version_again_updates_its_state_machine():
    # GIVEN vehicle-claim registered once
    registrar, catalog, machines = make_registrar()
    registrar.apply([example_services()["vehicle-claim"]])
    first = catalog.services["vehicle-claim"].ensemble
    assert first is not None

    # WHEN the same version is applied again with another description
    again = example_services()["vehicle-claim"].model_copy(update={"description": "changed"})
    registrar.apply([again])

    # THEN the same machine is updated and the entry keeps its ARN
    assert list(machines.machines) == ["eg-vehicle-claim"]
    stored = catalog.services["vehicle-claim"]
    assert stored.description == "changed"
    assert stored.ensemble is not None and stored.ensemble.state_machine_arn == first.state_machine_arn


def test_a_new_version_of_an_ensemble_gets_its_own_state_machine_and_waits_for_approval():
    # GIVEN vehicle-claim 1.0.0 registered and serving
    registrar, catalog, machines = make_registrar()
    registrar.apply([example_services()["vehicle-claim"]])
    first = catalog.services["vehicle-claim"]
    assert first.ensemble is not None

    # WHEN version 2.0.0 is applied
    registrar.apply([example_services()["vehicle-claim"].model_copy(update={"version": "2.0.0"})])

    # THEN it has a state machine of its own, is pending approval, and 1.0.0 keeps all traffic
    assert sorted(machines.machines) == ["eg-vehicle-claim", "eg-vehicle-claim_v2-0-0"]
    stored = catalog.services["vehicle-claim"]
    versions = stored.versions()
    assert versions["2.0.0"].status.value == "pending_approval"
    second = versions["2.0.0"].ensemble
    assert second is not None and second.state_machine_arn != first.ensemble.state_machine_arn
    assert stored.serving_traffic() == {first.version: 100}
    assert stored.ensemble is not None and stored.ensemble.state_machine_arn == first.ensemble.state_machine_arn


def test_a_step_may_read_a_step_that_ran_before_it_through_a_choice():
    # GIVEN complaint-triage's escalate step reading the vulnerability step (before it)
    registrar, catalog, _ = make_registrar()
    triage = example_services()["complaint-triage"]
    assert triage.ensemble is not None
    assert triage.ensemble.steps["escalate"].mapping["vulnerability"] == "$.steps.vulnerability"

    # WHEN it is registered
    registrar.apply([triage])

    # THEN it is accepted
    assert "complaint-triage" in catalog.services


# -- rejected: mappings --------------------------------------------------------------------------


def test_a_mapping_reading_a_parallel_sibling_is_rejected_naming_step_and_path():
    # GIVEN cost (in the Parallel) reading damage, which runs beside it, not before it
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(
            cost={
                "service": "repair-cost",
                "mapping": {"claim": "$.input.claim", "severity": "$.steps.damage.severity"},
            }
        ),
    )

    # WHEN / THEN it is rejected naming the ensemble, step, key and path, and nothing is written
    reject(
        registrar,
        [bad],
        "ensemble 'vehicle-claim'",
        "step 'cost'",
        "key 'severity'",
        "path '$.steps.damage.severity'",
        "step 'damage' is not upstream of step 'cost'",
    )


def test_a_mapping_reading_a_downstream_step_is_rejected():
    # GIVEN fraud (first) reading decision (which runs after it)
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(
            fraud={"service": "fraud-score", "mapping": {"claim": "$.input.claim", "d": "$.steps.decision"}}
        ),
    )

    # WHEN / THEN
    reject(registrar, [bad], "step 'fraud'", "path '$.steps.decision'", "not upstream")


def test_a_mapping_reading_a_step_after_a_choice_is_rejected():
    # GIVEN vulnerability (first) reading escalate (which only runs after it)
    registrar, _, _ = make_registrar()
    steps = ensemble("complaint-triage").model_dump()["ensemble"]["steps"]
    steps["vulnerability"]["mapping"] = {"text": "$.input.text", "routing": "$.steps.escalate.routing"}
    bad = ensemble("complaint-triage", steps=steps)

    # WHEN / THEN
    reject(registrar, [bad], "step 'vulnerability'", "path '$.steps.escalate.routing'")


def test_a_mapping_reading_itself_or_an_unknown_step_is_rejected():
    # GIVEN decision reading its own output, and another reading a step that does not exist
    registrar, _, _ = make_registrar()
    itself = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"service": "claim-decision", "mapping": {"x": "$.steps.decision"}}),
    )
    unknown = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"service": "claim-decision", "mapping": {"x": "$.steps.nope.y"}}),
    )

    # WHEN / THEN both are rejected
    reject(registrar, [itself], "step 'decision'", "path '$.steps.decision'")
    # AND an unknown step is named as unknown, with the steps there are (not "not upstream")
    reject(
        registrar,
        [unknown],
        "step 'decision' reads $.steps.nope.y: no step 'nope'; steps are: cost, damage, decision, fraud",
    )


def test_a_malformed_mapping_is_rejected_at_registration():
    # GIVEN a mapping whose path does not start at a context root
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(cost={"service": "repair-cost", "mapping": {"claim": "$.claim"}}),
    )

    # WHEN / THEN
    reject(registrar, [bad], "step 'cost'", "key 'claim'", "path '$.claim'")


# -- rejected: targets and steps ------------------------------------------------------------------


def test_an_unknown_target_service_is_rejected():
    # GIVEN decision calling a service that is neither in the catalog nor in the batch
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"service": "no-such-model", "mapping": "$.input"}),
    )

    # WHEN / THEN
    reject(registrar, [bad], "step 'decision'", "unknown service 'no-such-model'")


def test_a_step_defined_in_the_catalog_but_run_by_no_state_is_rejected():
    # GIVEN an extra catalog step that the state machine never runs
    registrar, _, _ = make_registrar()
    bad = ensemble("vehicle-claim", steps=vehicle_claim_steps(extra={"service": "echo", "mapping": "$.input"}))

    # WHEN / THEN
    reject(registrar, [bad], "['extra']", "no state runs them")


def test_a_step_run_by_the_state_machine_but_missing_from_the_catalog_is_rejected():
    # GIVEN the catalog entry without the fraud step that the state machine runs
    registrar, _, _ = make_registrar()
    bad = ensemble("vehicle-claim", steps=vehicle_claim_steps(fraud=None))

    # WHEN / THEN
    reject(registrar, [bad], "['fraud']", "does not define")


def test_a_fan_out_step_outside_a_map_is_rejected():
    # GIVEN decision declared as a fan-out although its state is a plain Task
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"fan_out": {"task": "complaint-classification"}}),
    )

    # WHEN / THEN
    reject(registrar, [bad], "fan-out step 'decision'", "Map")


# -- rejected: definitions ------------------------------------------------------------------------

TWO_STEPS = {
    "StartAt": "First",
    "States": {
        "First": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "${GetTransformCallFunctionArn}",
                "Payload": {"action": "call", "step": "first", "task_token.$": "$$.Task.Token"},
            },
            "Next": "Second",
        },
        "Second": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "${GetTransformCallFunctionArn}",
                "Payload": {"action": "call", "step": "second", "task_token.$": "$$.Task.Token"},
            },
            "End": True,
        },
    },
}


def two_step_ensemble(name: str, definition: Any, **steps: dict[str, Any]) -> tuple[Service, str]:
    """An ensemble of echo steps 'first' → 'second' over a definition text of the test's own."""
    path = f"memory/{name}.asl.json"
    service = Service.model_validate(
        {
            "name": name,
            "kind": "ensemble",
            "ensemble": {
                "definition": path,
                "steps": steps
                or {
                    "first": {"service": "echo", "mapping": "$.input"},
                    "second": {"service": "echo", "mapping": {"previous": "$.steps.first"}},
                },
            },
        }
    )
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return service, text


def with_definition(registrar: Registrar, service: Service, text: str) -> None:
    files = registrar.read_definition
    assert isinstance(files, Files) and service.ensemble is not None
    files.extra[service.ensemble.definition] = text


def test_a_well_formed_custom_definition_is_accepted():
    # GIVEN the two-step definition used by the failure cases below, unbroken
    registrar, catalog, machines = make_registrar()
    service, text = two_step_ensemble("two-steps", TWO_STEPS)
    with_definition(registrar, service, text)

    # WHEN it is registered
    registrar.apply([service])

    # THEN it is (so each rejection below is due to its one defect)
    assert "two-steps" in catalog.services and "eg-two-steps" in machines.machines


@pytest.mark.parametrize(
    ("defect", "fragment"),
    [
        pytest.param(
            lambda d: d["States"]["First"].update(Next="Nowhere"), "unknown state 'Nowhere'", id="unknown-Next"
        ),
        pytest.param(lambda d: d.pop("StartAt"), "StartAt 'None' is not a state", id="missing-StartAt"),
        pytest.param(lambda d: d["States"]["Second"].pop("End"), "neither Next nor End", id="no-End"),
        pytest.param(
            lambda d: d["States"]["Second"].update(End=False, Next="First"),
            "step 'first' can run after itself",
            id="cycle",
        ),
        pytest.param(
            lambda d: d["States"]["First"]["Parameters"]["Payload"].pop("step"),
            "must pass a 'step' name",
            id="callback-without-step",
        ),
    ],
)
def test_a_malformed_definition_is_rejected(defect: Any, fragment: str):
    # GIVEN the two-step definition with one defect
    registrar, _, _ = make_registrar()
    definition = copy.deepcopy(TWO_STEPS)
    defect(definition)
    service, text = two_step_ensemble("two-steps", definition)
    with_definition(registrar, service, text)

    # WHEN / THEN it is rejected naming the ensemble, and nothing is written
    reject(registrar, [service], "ensemble 'two-steps'", fragment)


def test_a_definition_that_is_not_json_or_uses_an_unknown_placeholder_is_rejected():
    # GIVEN a text that is not JSON, and one using a substitution nobody provides
    registrar, _, _ = make_registrar()
    not_json, text = two_step_ensemble("not-json", "{ not json")
    with_definition(registrar, not_json, text)
    placeholder, text = two_step_ensemble("placeholder", json.dumps(TWO_STEPS).replace("${Get", "${Other"))
    with_definition(registrar, placeholder, text)
    missing_file = not_json.model_copy(
        update={"ensemble": not_json.ensemble.model_copy(update={"definition": "statemachines/nope.asl.json"})}
    )

    # WHEN / THEN each is rejected with a validation error naming the problem
    reject(registrar, [not_json], "ensemble 'not-json'", "is not valid JSON")
    reject(registrar, [placeholder], "ensemble 'placeholder'", "${OtherTransformCallFunctionArn}")
    reject(registrar, [missing_file], "cannot read statemachines/nope.asl.json")


# -- rejected: nesting ---------------------------------------------------------------------------


def test_an_ensemble_calling_itself_is_rejected():
    # GIVEN decision calling vehicle-claim itself
    registrar, _, _ = make_registrar()
    bad = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(decision={"service": "vehicle-claim", "mapping": {"$raw": "input"}}),
    )

    # WHEN / THEN
    reject(registrar, [bad], "step 'decision' calls the ensemble itself")


def test_ensembles_containing_each_other_in_one_batch_are_rejected():
    # GIVEN outer → inner → outer, both new in one batch
    registrar, _, _ = make_registrar()
    outer, text = two_step_ensemble(
        "outer",
        TWO_STEPS,
        first={"service": "inner", "mapping": "$.input"},
        second={"service": "echo", "mapping": "$.steps.first"},
    )
    with_definition(registrar, outer, text)
    inner, text = two_step_ensemble(
        "inner",
        TWO_STEPS,
        first={"service": "echo", "mapping": "$.input"},
        second={"service": "outer", "mapping": "$.steps.first"},
    )
    with_definition(registrar, inner, text)

    # WHEN / THEN the loop is named and nothing is written
    reject(registrar, [outer, inner], "contains itself", "outer → inner → outer")


def test_an_update_that_closes_a_nesting_loop_through_the_catalog_is_rejected():
    # GIVEN inner (echo only) and outer (calls inner) registered
    registrar, catalog, _ = make_registrar()
    inner, inner_text = two_step_ensemble("inner", TWO_STEPS)
    with_definition(registrar, inner, inner_text)
    outer, outer_text = two_step_ensemble(
        "outer",
        TWO_STEPS,
        first={"service": "inner", "mapping": "$.input"},
        second={"service": "echo", "mapping": "$.steps.first"},
    )
    with_definition(registrar, outer, outer_text)
    registrar.apply([inner])
    registrar.apply([outer])
    assert {"inner", "outer"} <= set(catalog.services)

    # WHEN inner is updated to call outer
    looping, _ = two_step_ensemble(
        "inner",
        TWO_STEPS,
        first={"service": "echo", "mapping": "$.input"},
        second={"service": "outer", "mapping": "$.steps.first"},
    )

    # THEN it is rejected and the registered inner is unchanged
    reject(registrar, [looping], "contains itself", "inner → outer → inner")


# -- batches -------------------------------------------------------------------------------------


def test_a_batch_with_one_bad_service_registers_none():
    # GIVEN an empty catalog and the whole example catalog where only decision's mapping is bad
    registrar, _, _ = make_registrar(catalog=[])
    services = example_services()
    services["vehicle-claim"] = ensemble(
        "vehicle-claim",
        steps=vehicle_claim_steps(
            decision={"service": "claim-decision", "mapping": {"ok": "$.steps.fraud", "bad": "$.steps.later"}}
        ),
    )

    # WHEN / THEN the batch is rejected, naming the bad step, and no service nor machine is written
    reject(registrar, list(services.values()), "step 'decision'", "no step 'later'")


def test_a_batch_naming_one_version_of_a_service_twice_is_rejected():
    # GIVEN the same model version twice in one batch
    registrar, _, _ = make_registrar()
    echo = example_services()["echo"]

    # WHEN / THEN
    reject(registrar, [echo, echo.model_copy(update={"description": "again"})], "appears twice")


def test_two_versions_of_a_model_on_one_endpoint_are_rejected():
    # GIVEN two versions of echo naming the same endpoint
    registrar, _, _ = make_registrar()
    echo = example_services()["echo"]

    # WHEN / THEN the second is refused, naming the endpoint and the version serving from it
    reject(registrar, [echo, echo.model_copy(update={"version": "2"})], "names endpoint 'echo'", "version 1")


def test_one_batch_may_add_a_version_beside_the_first():
    # GIVEN echo 1 and echo 2 (its own endpoint, no approval needed, 10% of traffic) in one batch
    registrar, catalog, _ = make_registrar()
    echo = example_services()["echo"]
    assert echo.model is not None
    second = echo.model_copy(
        update={
            "version": "2",
            "model": echo.model.model_copy(update={"endpoint_name": "echo-2"}),
            "approval": "none",
            "traffic": {"1": 90, "2": 10},
        }
    )

    # WHEN it is applied
    registrar.apply([echo, second])

    # THEN both versions are stored, approved, with the split asked for; 1 is the primary
    stored = catalog.services["echo"]
    assert {v: r.status.value for v, r in stored.versions().items()} == {"1": "approved", "2": "approved"}
    assert stored.serving_traffic() == {"1": 90, "2": 10}
    assert stored.version == "1" and stored.model is not None and stored.model.endpoint_name == "echo"


def test_services_of_one_batch_may_reference_each_other():
    # GIVEN an empty catalog and an ensemble listed before the models it calls
    registrar, catalog, _ = make_registrar(catalog=[])
    services = example_services()
    ordered = [services["vehicle-claim"], *[s for s in services.values() if s.name != "vehicle-claim"]]

    # WHEN the batch is applied
    registrar.apply(ordered)

    # THEN all of it is registered
    assert set(catalog.services) == set(services)


def test_a_member_deactivated_in_the_batch_no_longer_sets_the_fan_out_timeout():
    # GIVEN a slow classifier of the fan-out task registered and active
    slow = Service.model_validate(
        {
            "name": "triage-slow",
            "kind": "model",
            "tasks": ["complaint-classification"],
            "model": {"endpoint_name": "triage-slow", "invocation_timeout_seconds": 1800},
        }
    )
    registrar, _, machines = make_registrar(catalog=[*MODELS, slow])

    # WHEN it is deactivated in the batch that registers complaint-triage
    registrar.apply([slow.model_copy(update={"active": False}), example_services()["complaint-triage"]])

    # THEN classify waits for the slowest *active* member only
    timeouts = callback_timeouts(machines.definition("eg-complaint-triage"))
    assert timeouts["classify"] == 600 + 300 + STEP_TIMEOUT_MARGIN_SECONDS
