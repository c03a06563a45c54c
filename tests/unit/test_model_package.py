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
from ensemble_gateway.framework_images import UnknownImageError, framework_image_uri, framework_of_image
from ensemble_gateway.model_hosting import container_definition, host_models
from ensemble_gateway.model_package import check_model_data, unpack_model_archive

OUTPUTS = {"BucketName": "data", "SuccessTopicArn": "arn:ok", "ErrorTopicArn": "arn:error"}


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


# -- hosting ---------------------------------------------------------------------------------------


class FakeEndpointManager:
    """Records the SageMaker calls; endpoints named in ``failing`` fail to load."""

    def __init__(self, failing: dict[str, str] | None = None) -> None:
        self.failing = failing or {}
        self.calls: list[tuple[str, Any]] = []
        self.endpoints: dict[str, tuple[str, str, str]] = {}  # name -> (status, config, model)
        self.configs: dict[str, str] = {}

    def current_config(self, endpoint: str) -> tuple[str, str, str] | None:
        return self.endpoints.get(endpoint)

    def delete_endpoint(self, endpoint: str) -> None:
        self.calls.append(("delete_endpoint", endpoint))
        self.endpoints.pop(endpoint)

    def create_model(self, name: str, container: dict[str, Any], role_arn: str) -> None:
        self.calls.append(("create_model", (name, container)))

    def create_endpoint_config(
        self, name: str, model_name: str, variant: dict[str, Any], async_config: dict[str, Any] | None
    ) -> None:
        self.calls.append(("create_endpoint_config", (name, async_config)))
        self.configs[name] = model_name

    def roll_out(self, endpoint: str, config_name: str, *, exists: bool) -> None:
        self.calls.append(("update" if exists else "create", endpoint))
        if endpoint in self.failing:
            previous = self.endpoints.get(endpoint)
            self.endpoints[endpoint] = previous if previous else ("Failed", config_name, self.configs[config_name])
        else:
            self.endpoints[endpoint] = ("InService", config_name, self.configs[config_name])

    def wait(self, endpoint: str, config_name: str, timeout_seconds: float) -> str | None:
        return self.failing.get(endpoint)

    def delete(self, config_name: str, model_name: str) -> None:
        self.calls.append(("delete", config_name))


def model_service(name: str, model_data: str | None, **fields: Any) -> Service:
    return Service(
        name=name,
        kind="model",
        model=ModelTarget(endpoint_name=name, model_data=model_data, **fields),
    )


def test_hosting_creates_a_model_config_and_endpoint_for_each_model_with_model_data(tmp_path: Path) -> None:
    # GIVEN two services with model data (async and real-time) and one without
    directory = model_dir(tmp_path)
    services = [
        model_service("a", str(directory), framework="sklearn", environment={"THRESHOLD": "0.5"}),
        model_service("b", str(directory), invocation="realtime"),
        model_service("c", None),
    ]
    manager = FakeEndpointManager()

    # WHEN they are hosted
    hosted = host_models(services, manager, stack_outputs=OUTPUTS, region="us-east-1")

    # THEN both endpoints with model data are created, async one with the stack's topics and paths
    assert hosted == ["a", "b"]
    assert [c for c in manager.calls if c[0] == "create"] == [("create", "a"), ("create", "b")]
    configs = {name: config for kind, (name, config) in (c for c in manager.calls if c[0] == "create_endpoint_config")}
    async_config = next(iter(configs.values()))
    assert async_config["OutputConfig"]["S3OutputPath"] == "s3://data/outputs"
    assert async_config["OutputConfig"]["NotificationConfig"] == {"SuccessTopic": "arn:ok", "ErrorTopic": "arn:error"}
    assert list(configs.values())[1] is None  # real-time
    # AND the container carries the framework image, the directory and the environment
    containers = [payload[1] for kind, payload in manager.calls if kind == "create_model"]
    assert "sagemaker-scikit-learn" in containers[0]["Image"]
    assert containers[0]["ModelDataSource"]["S3DataSource"]["S3Uri"] == directory.as_uri() + "/"
    assert containers[0]["Environment"]["THRESHOLD"] == "0.5"
    assert containers[0]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"


def test_re_applying_updates_the_endpoint_and_removes_the_superseded_model() -> None:
    # GIVEN an endpoint already serving an older configuration
    manager = FakeEndpointManager()
    manager.endpoints["a"] = ("InService", "old-config", "old-model")

    # WHEN the service is hosted again
    host_models([model_service("a", "s3://bucket/model.tar.gz")], manager, stack_outputs=OUTPUTS, region="us-east-1")

    # THEN the endpoint is updated in place and the old configuration deleted after it serves
    kinds = [c[0] for c in manager.calls]
    assert "update" in kinds and "create" not in kinds
    assert ("delete", "old-config") in manager.calls


def test_a_model_that_fails_to_load_is_reported_naming_the_service_and_reason() -> None:
    # GIVEN an endpoint whose model cannot load
    manager = FakeEndpointManager(failing={"a": "/m/code/inference.py: ImportError: No module named 'nope'"})

    # WHEN it is hosted THEN the error names the service, its endpoint and the model's reason
    with pytest.raises(ModelHostingError, match=r"service 'a': /m/code/inference\.py: ImportError"):
        host_models([model_service("a", "s3://b/model.tar.gz")], manager, stack_outputs=OUTPUTS, region="us-east-1")


def test_a_failed_endpoint_is_deleted_and_created_again() -> None:
    # GIVEN an endpoint left Failed by an earlier apply
    manager = FakeEndpointManager()
    manager.endpoints["a"] = ("Failed", "bad-config", "bad-model")

    # WHEN it is hosted again
    host_models([model_service("a", "s3://b/model.tar.gz")], manager, stack_outputs=OUTPUTS, region="us-east-1")

    # THEN it is deleted and created (a failed endpoint cannot be updated on AWS)
    kinds = [c[0] for c in manager.calls]
    assert kinds.index("delete_endpoint") < kinds.index("create")
    assert manager.endpoints["a"][0] == "InService"


def test_a_custom_model_without_image_gets_a_local_image_and_a_tarball_a_model_data_url(tmp_path: Path) -> None:
    archive = archive_of(model_dir(tmp_path), tmp_path / "model.tar.gz")
    container = container_definition(model_service("a", str(archive)), "us-east-1")
    assert container["ModelDataUrl"] == archive.as_uri()
    assert container["Image"].startswith("local/")
