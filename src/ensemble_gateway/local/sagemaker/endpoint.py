"""What one endpoint of the local SageMaker runtime is: a model directory and SageMaker's settings for it.

Kept free of heavy imports: the catalog builds these before any model code is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_PROGRAM", "FRAMEWORKS", "LocalEndpoint"]

#: The framework containers whose defaults the local runtime reproduces ("custom" is the bare
#: sagemaker-inference toolkit, as a bring-your-own container built on it serves).
FRAMEWORKS: tuple[str, ...] = ("sklearn", "xgboost", "pytorch", "huggingface", "custom")

#: The entry point the containers import when ``SAGEMAKER_PROGRAM`` is not set.
DEFAULT_PROGRAM = "inference.py"


@dataclass
class LocalEndpoint:
    """One hosted model, configured as a SageMaker endpoint (and its Model) would be.

    Parameters
    ----------
    name : str
        The endpoint name, as ``InvokeEndpoint`` takes it.
    model_dir : Path
        The model directory in the inference-toolkit layout: artefacts, and ``code/<program>``
        with the handlers (optional when the framework's defaults can serve the artefacts alone).
    mode : {"async", "realtime"}
        Which API serves it: ``InvokeEndpointAsync`` or ``InvokeEndpoint``.
    output_path, failure_path : str
        Asynchronous endpoints: ``S3OutputPath`` and ``S3FailurePath``, e.g. ``"s3://bucket/outputs"``.
    success_topic_arn, error_topic_arn : str
        Asynchronous endpoints: the SNS topics notified of each result (empty: none).
    max_concurrency : int
        Size of the endpoint's worker pool: how many invocations run at once.
    default_timeout_seconds : int
        Asynchronous endpoints: ``InvocationTimeoutSeconds`` when a request gives none (1..3600).
    variant : str
        The production variant reported as ``InvokedProductionVariant``.
    framework : str
        Whose defaults serve the handlers ``code/<program>`` leaves out: one of ``FRAMEWORKS``.
    program : str
        The entry point under ``code/``, as ``SAGEMAKER_PROGRAM`` names it (``"serve"`` or ``"serve.py"``).
        Left at ``"inference.py"``, a ``SAGEMAKER_PROGRAM`` in ``environment`` chooses it instead.
    environment : dict[str, str]
        The Model's environment variables (``HF_TASK``, ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``...).
    """

    name: str
    model_dir: Path
    mode: Literal["async", "realtime"]
    output_path: str = ""
    failure_path: str = ""
    success_topic_arn: str = ""
    error_topic_arn: str = ""
    max_concurrency: int = 2
    default_timeout_seconds: int = 900
    variant: str = "AllTraffic"
    framework: str = "custom"
    program: str = DEFAULT_PROGRAM
    environment: dict[str, str] = field(default_factory=dict)
