"""The SageMaker framework containers' image URIs, and the framework an image URI belongs to.

Source: the SageMaker Python SDK's ``src/sagemaker/image_uri_config/{sklearn,xgboost,pytorch,
huggingface}.json`` (registries per region, repository names, tags), for the regions listed
here. scikit-learn and XGBoost images live in SageMaker's first-party registries (one account
per region); PyTorch and Hugging Face in the Deep Learning Containers registry (763104351884 in
these regions). A region missing here needs ``model.image``.

The local runtime reads the framework back from an image's repository name, as the image is
what decides which container's defaults serve a model on AWS.
"""

from __future__ import annotations

__all__ = ["DEFAULT_VERSIONS", "UnknownImageError", "framework_image_uri", "framework_of_image"]

_FIRST_PARTY = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
    "ca-central-1": "341280168497",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "eu-central-1": "492215442770",
    "eu-north-1": "662702820516",
    "ap-northeast-1": "354813040037",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-south-1": "720646828776",
    "sa-east-1": "737474898029",
}
_DEEP_LEARNING_CONTAINERS = dict.fromkeys(_FIRST_PARTY, "763104351884")

#: framework → (registries by region, repository, tag template with {version}).
_IMAGES: dict[str, tuple[dict[str, str], str, str]] = {
    "sklearn": (_FIRST_PARTY, "sagemaker-scikit-learn", "{version}-cpu-py3"),
    "xgboost": (_FIRST_PARTY, "sagemaker-xgboost", "{version}"),
    "pytorch": (_DEEP_LEARNING_CONTAINERS, "pytorch-inference", "{version}-cpu-py310"),
    "huggingface": (
        _DEEP_LEARNING_CONTAINERS,
        "huggingface-pytorch-inference",
        "{version}-cpu-py310-ubuntu22.04",
    ),
}

#: The container version used when a catalog entry gives no ``framework_version``.
DEFAULT_VERSIONS = {
    "sklearn": "1.2-1",
    "xgboost": "1.7-1",
    "pytorch": "2.1",
    "huggingface": "2.1.0-transformers4.37.0",
}

# Repository names → framework, most specific first (huggingface-pytorch-… before pytorch-…).
_REPOSITORY_FRAMEWORKS = (
    ("huggingface-", "huggingface"),
    ("sagemaker-scikit-learn", "sklearn"),
    ("sagemaker-xgboost", "xgboost"),
    ("pytorch-inference", "pytorch"),
)


class UnknownImageError(ValueError):
    """No image is known for this framework and region: the catalog entry must name ``image``."""


def framework_image_uri(framework: str, region: str, version: str | None = None) -> str:
    """The image URI of ``framework``'s serving container in ``region``.

    Raises
    ------
    UnknownImageError
        ``framework`` is ``custom`` or the region is not in the table.
    """
    if framework not in _IMAGES:
        raise UnknownImageError(f"framework '{framework}' has no SageMaker image: give model.image")
    registries, repository, tag = _IMAGES[framework]
    account = registries.get(region)
    if account is None:
        raise UnknownImageError(
            f"no {framework} image is listed for region {region}: give model.image "
            "(see the SageMaker Python SDK's image_uri_config)"
        )
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    chosen = version or DEFAULT_VERSIONS[framework]
    return f"{account}.dkr.ecr.{region}.{suffix}/{repository}:{tag.format(version=chosen)}"


def framework_of_image(image: str) -> str:
    """The framework whose container ``image`` is (``custom`` for any other image)."""
    repository = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    for prefix, framework in _REPOSITORY_FRAMEWORKS:
        if repository.startswith(prefix):
            return framework
    return "custom"
