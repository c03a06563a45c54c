"""``sagemaker_containers`` encoders and decoders, backed by sagemaker-inference's.

``decode(obj, content_type)`` and ``encode(array_like, content_type)`` for JSON, CSV and NPY
(NPZ decodes too), raising ``UnsupportedFormatError`` otherwise, as the original does. One
difference in detail: CSV decodes with numpy's ``genfromtxt`` (floats, NaN for what is not a
number), where the original reads strings with ``csv.reader`` and squeezes the array; after the
``astype`` float conversion the containers' defaults apply, the two agree on numeric input.
"""

from __future__ import annotations

from typing import Any

from sagemaker_inference import decoder, encoder

from . import _content_types as content_types

__all__ = [
    "array_to_csv",
    "array_to_json",
    "array_to_npy",
    "csv_to_numpy",
    "decode",
    "encode",
    "json_to_numpy",
    "npy_to_numpy",
]


def decode(obj: Any, content_type: str) -> Any:
    """Decode ``obj`` of ``content_type`` (JSON, CSV, NPY, NPZ) into numpy."""
    return decoder.decode(obj, content_type)


def encode(array_like: Any, content_type: str) -> Any:
    """Encode ``array_like`` as ``content_type`` (JSON, CSV or NPY)."""
    return encoder.encode(array_like, content_type)


def json_to_numpy(string_like: str, dtype: Any = None) -> Any:
    """A JSON document into a numpy array (of ``dtype`` when given)."""
    array = decode(string_like, content_types.JSON)
    return array if dtype is None else array.astype(dtype)


def csv_to_numpy(string_like: str, dtype: Any = None) -> Any:
    """CSV rows into a numpy array (of ``dtype`` when given)."""
    array = decode(string_like, content_types.CSV)
    return array if dtype is None else array.astype(dtype)


def npy_to_numpy(npy_array: bytes) -> Any:
    """NPY bytes into a numpy array."""
    return decode(npy_array, content_types.NPY)


def array_to_json(array_like: Any) -> str:
    """An array-like as a JSON document."""
    return str(encode(array_like, content_types.JSON))


def array_to_csv(array_like: Any) -> str:
    """An array-like as CSV rows."""
    return str(encode(array_like, content_types.CSV))


def array_to_npy(array_like: Any) -> bytes:
    """An array-like as NPY bytes."""
    return bytes(encode(array_like, content_types.NPY))
