"""Model directories and archives in the SageMaker layout, the catalog's model fields, images."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ensemble_gateway.admin import load_services
from ensemble_gateway.domain.errors import CatalogValidationError, ModelHostingError
from ensemble_gateway.domain.models import ModelTarget, Service
from ensemble_gateway.endpoint_stack import EndpointStackError, GatewayWiring, endpoint_parameters
from ensemble_gateway.framework_images import UnknownImageError, framework_image_uri, framework_of_image
from ensemble_gateway.model_hosting import host_models
from ensemble_gateway.model_package import check_model_data, package_model, unpack_model_archive


def model_dir(root: Path, name: str = "model", files: dict[str, str] | None = None) -> Path:
    directory = root / name
    for relative, text in (files or {"code/inference.py": "def model_fn(d):\n    return 1\n"}).items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return directory


def archive_of(directory: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(directory)))
    return target


def catalog(tmp_path: Path, model: dict[str, Any], name: str = "my-model") -> Path:
    path = tmp_path / "catalogs" / "catalog.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"name": name, "kind": "model", "model": {"endpoint_name": name, **model}}]))
    return path


# -- catalog fields --------------------------------------------------------------------------------


def test_a_relative_model_data_is_resolved_against_the_catalog_file(tmp_path: Path) -> None:
    # GIVEN a model directory beside the catalog's folder and a catalog naming it relatively
    directory = model_dir(tmp_path)
    path = catalog(tmp_path, {"model_data": "../model", "framework": "sklearn"})

    # WHEN the catalog is read
    [service] = load_services(path)

    # THEN model_data is the directory's absolute path, whatever the working directory
    assert service.model is not None
    assert service.model.model_data == str(directory.resolve())
    assert service.model.framework == "sklearn"


def test_a_missing_model_directory_is_refused_naming_the_path(tmp_path: Path) -> None:
    # GIVEN a catalog naming a directory that does not exist
    path = catalog(tmp_path, {"model_data": "nowhere/model"})

    # WHEN it is read THEN the error names the service and the resolved path
    with pytest.raises(CatalogValidationError, match=r"service 'my-model'.*nowhere/model does not exist"):
        load_services(path)


def test_an_unknown_framework_is_refused_with_the_frameworks_listed(tmp_path: Path) -> None:
    # GIVEN a model entry with a framework SageMaker has no container for here
    path = catalog(tmp_path, {"model_data": "x", "framework": "tensorflow-lite"})

    # WHEN it is read THEN the error names the field and the frameworks there are
    with pytest.raises(CatalogValidationError, match=r"model\.framework.*'sklearn'.*'custom'"):
        load_services(path)


def test_a_directory_without_inference_py_is_refused_for_sklearn(tmp_path: Path) -> None:
    # GIVEN a scikit-learn model directory with artefacts only (the container has no default model_fn)
    model_dir(tmp_path, files={"model.joblib": "x"})
    path = catalog(tmp_path, {"model_data": "../model", "framework": "sklearn"})

    # WHEN it is read THEN it is refused, saying what is missing
    with pytest.raises(CatalogValidationError, match=r"has no code/inference\.py; framework 'sklearn' cannot serve"):
        load_services(path)


def test_an_xgboost_directory_with_only_the_booster_is_accepted(tmp_path: Path) -> None:
    # GIVEN an XGBoost model directory holding only xgboost-model (the container's default model_fn loads it)
    model_dir(tmp_path, files={"xgboost-model": "booster"})
    path = catalog(tmp_path, {"model_data": "../model", "framework": "xgboost"})

    # WHEN it is read THEN it is accepted
    [service] = load_services(path)
    assert service.model is not None and service.model.framework == "xgboost"


def test_another_entry_point_must_exist_under_code(tmp_path: Path) -> None:
    # GIVEN a directory with code/serve.py, and entries naming serve.py and a missing predictor.py
    model_dir(tmp_path, files={"code/serve.py": "def model_fn(d):\n    return 1\n"})
    good = catalog(tmp_path, {"model_data": "../model", "entry_point": "serve.py"})
    [service] = load_services(good)
    assert service.model is not None and service.model.entry_point == "serve.py"

    bad = catalog(tmp_path, {"model_data": "../model", "entry_point": "predictor"})
    with pytest.raises(CatalogValidationError, match=r"code/predictor\.py"):
        load_services(bad)


def test_environment_variable_names_are_checked(tmp_path: Path) -> None:
    # GIVEN an environment with a name no container accepts
    with pytest.raises(ValueError, match=r"not an environment variable name"):
        ModelTarget(endpoint_name="m", environment={"BAD-NAME": "1"})


def test_a_model_tar_gz_is_checked_inside(tmp_path: Path) -> None:
    # GIVEN a model.tar.gz with code/inference.py at its root, and one without
    good = archive_of(model_dir(tmp_path, "good"), tmp_path / "good.tar.gz")
    bare = archive_of(model_dir(tmp_path, "bare", files={"model.joblib": "x"}), tmp_path / "bare.tar.gz")

    # WHEN they are checked THEN the first passes and the second names what it lacks
    check_model_data("m", ModelTarget(endpoint_name="m", model_data=str(good), framework="sklearn"))
    with pytest.raises(CatalogValidationError, match=r"has no code/inference\.py"):
        check_model_data("m", ModelTarget(endpoint_name="m", model_data=str(bare), framework="sklearn"))


def test_an_archive_member_escaping_the_directory_is_refused(tmp_path: Path) -> None:
    # GIVEN a model.tar.gz with a member '../evil.py'
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = b"print('x')"
        info = tarfile.TarInfo("../evil.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    # WHEN it is checked or unpacked THEN it is refused and nothing is written outside
    with pytest.raises(CatalogValidationError, match=r"outside the model directory"):
        check_model_data("m", ModelTarget(endpoint_name="m", model_data=str(path)))
    with pytest.raises(CatalogValidationError, match=r"outside the model directory"):
        unpack_model_archive(path, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists()


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(CatalogValidationError, match=r"not a readable \.tar\.gz"):
        check_model_data("m", ModelTarget(endpoint_name="m", model_data=str(path)))


# -- images ----------------------------------------------------------------------------------------


def test_framework_images_round_trip_to_their_framework() -> None:
    for framework in ("sklearn", "xgboost", "pytorch", "huggingface"):
        image = framework_image_uri(framework, "eu-west-1")
        assert image.split(".")[0].isdigit(), image
        assert framework_of_image(image) == framework
    assert framework_image_uri("sklearn", "us-east-1", "1.2-1") == (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    assert framework_of_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own:latest") == "custom"


def test_no_image_is_invented_for_custom_or_an_unlisted_region() -> None:
    with pytest.raises(UnknownImageError, match=r"give model\.image"):
        framework_image_uri("custom", "us-east-1")
    with pytest.raises(UnknownImageError, match=r"region mars-1"):
        framework_image_uri("sklearn", "mars-1")


# -- packaging ------------------------------------------------------------------------------------


def test_a_directory_is_packed_with_its_files_at_the_archive_root_and_the_same_digest_each_time(
    tmp_path: Path,
) -> None:
    # GIVEN a model directory whose code was imported once (a __pycache__ beside inference.py)
    directory = model_dir(
        tmp_path, files={"code/inference.py": "def model_fn(d):\n    return 1\n", "model.joblib": "x"}
    )
    (directory / "code" / "__pycache__").mkdir()
    (directory / "code" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"cache")

    # WHEN it is packed twice, the second time after its files were touched
    first = package_model(directory, tmp_path / "first")
    for path in directory.rglob("*"):
        if path.is_file():
            path.touch()
    second = package_model(directory, tmp_path / "second")

    # THEN the archive holds the files as a container unpacks them (no cache) and is reproducible
    with tarfile.open(first.archive) as archive:
        assert sorted(archive.getnames()) == ["code/inference.py", "model.joblib"]
    assert first.digest == second.digest
    assert first.archive.read_bytes() == second.archive.read_bytes()
    # AND a changed file gives another digest
    (directory / "code" / "inference.py").write_text("def model_fn(d):\n    return 2\n")
    assert package_model(directory, tmp_path / "third").digest != first.digest


def test_an_existing_archive_is_used_as_it_is(tmp_path: Path) -> None:
    archive = archive_of(model_dir(tmp_path), tmp_path / "model.tar.gz")
    packaged = package_model(archive, tmp_path / "work")
    assert packaged.archive == archive
    assert not (tmp_path / "work").exists()


# -- hosting: one endpoint stack per model ------------------------------------------------------

WIRING = GatewayWiring(
    stack_name="gw",
    region="us-east-1",
    bucket="data",
    success_topic_arn="arn:aws:sns:us-east-1:123456789012:ok",
    error_topic_arn="arn:aws:sns:us-east-1:123456789012:error",
    data_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
)


class FakeArtifacts:
    """Records uploads (bucket, key, archive members)."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, str, list[str]]] = []

    def upload(self, archive: Path, bucket: str, key: str) -> str:
        with tarfile.open(archive) as opened:
            self.uploads.append((bucket, key, sorted(opened.getnames())))
        return f"s3://{bucket}/{key}"

    def default_kms_key(self, bucket: str) -> str | None:
        return WIRING.data_key_arn


class FakeStacks:
    """Records deployments; stacks named in ``failing`` fail with that reason (the endpoint's)."""

    def __init__(self, failing: dict[str, str] | None = None) -> None:
        self.failing = failing or {}
        self.deployed: dict[str, tuple[str, dict[str, str]]] = {}

    def deploy(self, stack_name: str, template_body: str, parameters: Any, on_event: Any = None) -> dict[str, str]:
        if stack_name in self.failing:
            raise EndpointStackError(f"stack {stack_name} ROLLBACK_COMPLETE", reason=self.failing[stack_name])
        self.deployed[stack_name] = (template_body, dict(parameters))
        return {"EndpointName": parameters["EndpointName"]}

    def delete(self, stack_name: str, on_event: Any = None) -> None:
        self.deployed.pop(stack_name)


def model_service(name: str, model_data: str | None, **fields: Any) -> Service:
    return Service(
        name=name,
        kind="model",
        version="1.0.0",
        model=ModelTarget(endpoint_name=name, model_data=model_data, **fields),
    )


def test_hosting_deploys_an_endpoint_stack_for_each_model_with_model_data(tmp_path: Path) -> None:
    # GIVEN two services with model data (async and real-time) and one without
    directory = model_dir(tmp_path)
    services = [
        model_service("a", str(directory), framework="sklearn", environment={"THRESHOLD": "0.5"}),
        model_service("b", str(directory), invocation="realtime"),
        model_service("c", None),
    ]
    stacks, artifacts = FakeStacks(), FakeArtifacts()

    # WHEN they are hosted
    hosted = host_models(services, stacks=stacks, artifacts=artifacts, wiring=WIRING)

    # THEN each model with model data is packed, uploaded under models/<service>/<version>/ and
    # deployed as its endpoint stack, async or real-time as its entry says
    assert hosted == ["a", "b"]
    assert sorted(stacks.deployed) == ["gw-model-a", "gw-model-b"]
    assert sorted((bucket, key.split("/")[:3], members) for bucket, key, members in artifacts.uploads) == [
        ("data", ["models", "a", "1.0.0"], ["code/inference.py"]),
        ("data", ["models", "b", "1.0.0"], ["code/inference.py"]),
    ]
    body, parameters = stacks.deployed["gw-model-a"]
    assert parameters["EndpointType"] == "async" and stacks.deployed["gw-model-b"][1]["EndpointType"] == "realtime"
    [key_of_a] = [key for _, key, _ in artifacts.uploads if key.startswith("models/a/")]
    assert parameters["ModelDataUrl"] == f"s3://data/{key_of_a}"
    assert (parameters["BucketName"], parameters["SuccessTopicArn"], parameters["DataKeyArn"]) == (
        "data",
        WIRING.success_topic_arn,
        WIRING.data_key_arn,
    )
    # AND the rendered template carries the framework's image and the entry's environment
    assert "sagemaker-scikit-learn" in parameters["ImageUri"]
    assert 'THRESHOLD: "0.5"' in body and "SAGEMAKER_PROGRAM: !Ref EntryPoint" in body


def test_re_hosting_an_unchanged_model_deploys_the_same_model_data_and_a_changed_one_new_data(tmp_path: Path) -> None:
    # GIVEN a hosted model
    directory = model_dir(tmp_path)
    stacks = FakeStacks()
    host_models([model_service("a", str(directory))], stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)
    first = stacks.deployed["gw-model-a"][1]["ModelDataUrl"]

    # WHEN it is hosted again unchanged, then after its code changed
    host_models([model_service("a", str(directory))], stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)
    again = stacks.deployed["gw-model-a"][1]["ModelDataUrl"]
    (directory / "code" / "inference.py").write_text("def model_fn(d):\n    return 2\n")
    host_models([model_service("a", str(directory))], stacks=stacks, artifacts=FakeArtifacts(), wiring=WIRING)
    changed = stacks.deployed["gw-model-a"][1]["ModelDataUrl"]

    # THEN the same files are the same archive (nothing for the stack update to replace), new
    # files a new one (the update replaces the model)
    assert again == first
    assert changed != first


def test_a_model_that_fails_to_load_is_reported_naming_the_service_and_the_users_file(tmp_path: Path) -> None:
    # GIVEN an endpoint stack that fails because the model's code does not import (in /opt/ml/model)
    directory = model_dir(tmp_path)
    stacks = FakeStacks(
        failing={"gw-model-a": "endpoint 'a': importing /opt/ml/model/code/inference.py failed: ImportError: nope"}
    )

    # WHEN it is hosted with another model that loads
    with pytest.raises(ModelHostingError) as raised:
        host_models(
            [model_service("a", str(directory)), model_service("b", str(directory))],
            stacks=stacks,
            artifacts=FakeArtifacts(),
            wiring=WIRING,
        )

    # THEN the error names the service and the file in the user's directory; the other was deployed
    assert raised.value.message == (
        f"service 'a': endpoint 'a': importing {directory}/code/inference.py failed: ImportError: nope"
    )
    assert list(stacks.deployed) == ["gw-model-b"]


def test_an_s3_model_data_is_deployed_as_it_is_and_a_prefix_uncompressed() -> None:
    stacks, artifacts = FakeStacks(), FakeArtifacts()
    host_models(
        [model_service("a", "s3://models/a/model.tar.gz"), model_service("b", "s3://models/b")],
        stacks=stacks,
        artifacts=artifacts,
        wiring=WIRING,
    )
    assert artifacts.uploads == []
    a, b = stacks.deployed["gw-model-a"][1], stacks.deployed["gw-model-b"][1]
    assert (a["ModelDataUrl"], a["ModelDataCompression"]) == ("s3://models/a/model.tar.gz", "Gzip")
    assert (b["ModelDataUrl"], b["ModelDataCompression"]) == ("s3://models/b/", "None")


def test_a_custom_model_without_image_gets_a_local_image_only_on_the_local_runtime(tmp_path: Path) -> None:
    # GIVEN a custom-container model that names no image
    service = model_service("a", "s3://models/a/model.tar.gz", framework="custom")

    # WHEN its parameters are filled for the local runtime THEN its image is an ECR-shaped local
    # one that no framework's container claims (the toolkit's bare defaults serve it)
    image = endpoint_parameters(service, WIRING, "s3://models/a/model.tar.gz", local=True)["ImageUri"]
    assert ".dkr.ecr.us-east-1.amazonaws.com/" in image
    assert framework_of_image(image) == "custom"
    # AND for AWS it is refused, naming the field to give
    with pytest.raises(EndpointStackError, match=r"service 'a'.*give model\.image"):
        endpoint_parameters(service, WIRING, "s3://models/a/model.tar.gz", local=False)
