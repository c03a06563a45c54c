"""The local SageMaker runtime: models in the inference-toolkit layout behind the SageMaker Runtime API.

- ``runtime``: ``LocalSageMakerRuntime``, the WSGI front (``InvokeEndpoint``, ``InvokeEndpointAsync``),
  S3 inputs and outputs, SNS notifications.
- ``workers``: invocations as jobs, and each endpoint's bounded worker pool.
- ``processes``: models served from worker processes of their own (a crash is a ``ModelError``).
- ``hosting``: one model's code imported, requirements checked, model loaded (``ModelLoadError``).
- ``toolkit``: the inference toolkit's request sequence, pure.
- ``frameworks``: the scikit-learn, XGBoost, PyTorch, Hugging Face and bare-toolkit defaults.
- ``compat``: a stand-in ``sagemaker_containers`` for scripts written for the scikit-learn container.

``REALTIME_TIMEOUT_SECONDS`` is read from ``runtime`` at each invocation: patch it there.
"""

from .endpoint import FRAMEWORKS, LocalEndpoint
from .hosting import ModelLoadError
from .runtime import REALTIME_TIMEOUT_SECONDS, LocalSageMakerRuntime
from .toolkit import ModelContext

__all__ = [
    "FRAMEWORKS",
    "REALTIME_TIMEOUT_SECONDS",
    "LocalEndpoint",
    "LocalSageMakerRuntime",
    "ModelContext",
    "ModelLoadError",
]
