"""``sagemaker_containers.beta.framework``: ``content_types``, ``encoders``, ``errors`` and ``worker``.

As model scripts use it: ``from sagemaker_containers.beta.framework import worker, encoders, content_types``.
"""

from ... import _content_types as content_types
from ... import _encoders as encoders
from ... import _errors as errors
from ... import _worker as worker

__all__ = ["content_types", "encoders", "errors", "worker"]
