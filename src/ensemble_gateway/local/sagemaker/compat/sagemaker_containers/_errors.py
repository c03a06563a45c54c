"""The errors of ``sagemaker_containers`` scripts catch or raise.

``UnsupportedFormatError`` is sagemaker-inference's own class, so that the local runtime treats
it as the toolkit's error wherever it comes from.
"""

from sagemaker_inference.errors import UnsupportedFormatError

__all__ = ["ClientError", "ImportModuleError", "UnsupportedFormatError"]


class ClientError(Exception):
    """The error sagemaker-containers raises for a failure of the model's code (not of the framework)."""


class ImportModuleError(ClientError):
    """The model's module failed to import."""
