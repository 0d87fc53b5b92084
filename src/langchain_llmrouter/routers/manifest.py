"""The manifest and digest that guard a saved router's ``arrays.safetensors``.

At save time ``router.json`` records every array's dtype and shape (``arrays``) and a SHA-256
digest over the candidate names, in order, and that manifest (``digest``). At load time
`check_saved_arrays` reads only the safetensors header (its size bounded), and before any
array data is read checks that:

- the header is well formed and every tensor's byte range matches its dtype and shape and
  lies inside the file, so the loader never allocates more than the file's arrays;
- the arrays are exactly those of the manifest, with the same dtypes and shapes;
- the digest matches the candidate names in ``router.json`` (renamed candidates are refused).

Routers saved before the manifest existed (no ``arrays`` / ``digest``) skip the last two checks.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter.errors import RouterLoadError

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Largest safetensors JSON header read (the limit safetensors itself applies)."""

DTYPE_CODES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "uint16": "U16",
    "int16": "I16",
    "float16": "F16",
    "uint32": "U32",
    "int32": "I32",
    "float32": "F32",
    "uint64": "U64",
    "int64": "I64",
    "float64": "F64",
}
"""Numpy dtype name → safetensors dtype code."""

ITEM_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}
"""Bytes per element of each safetensors dtype code."""


def array_manifest(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """``{name: {"dtype": code, "shape": [...]}}`` for the arrays about to be saved."""
    manifest = {}
    for name, array in arrays.items():
        code = DTYPE_CODES.get(array.dtype.name)
        if code is None:
            raise TypeError(f"array {name!r}: dtype {array.dtype} cannot be saved")
        manifest[name] = {"dtype": code, "shape": [int(n) for n in array.shape]}
    return manifest


def state_digest(candidates: list[str], manifest: dict[str, dict[str, Any]]) -> str:
    """SHA-256 over the candidate names in order and the arrays' names, dtypes and shapes."""
    payload = json.dumps(
        {"candidates": list(candidates), "arrays": manifest}, sort_keys=True, ensure_ascii=True
    )
    return "sha256:" + hashlib.sha256(payload.encode("ascii")).hexdigest()


def read_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors a safetensors file declares, ``{name: {"dtype", "shape"}}``, checked.

    Reads the 8-byte header length and the JSON header only (at most `MAX_HEADER_BYTES`),
    and checks that each tensor's byte range fits its dtype and shape and lies in the file.

    Raises:
        RouterLoadError: no file, or a malformed or inconsistent header (naming the tensor).
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise RouterLoadError(f"{path}: too short to be a safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise RouterLoadError(
                    f"{path}: header declares {length} bytes; the file has {size - 8} after "
                    f"the length (at most {MAX_HEADER_BYTES} are read)"
                )
            raw = fh.read(length)
    except OSError as exc:
        raise RouterLoadError(f"{path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RouterLoadError(f"{path}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise RouterLoadError(f"{path}: the safetensors header is not a JSON object")
    data_bytes = size - 8 - length
    tensors: dict[str, dict[str, Any]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}, array {name!r}"
        if not isinstance(entry, dict):
            raise RouterLoadError(f"{where}: header entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in ITEM_SIZES:
            raise RouterLoadError(f"{where}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(_is_count(n) for n in shape)):
            raise RouterLoadError(f"{where}: shape {shape!r} is not a list of counts")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
            raise RouterLoadError(f"{where}: data_offsets {offsets!r} are not two byte offsets")
        declared = math.prod(shape) * ITEM_SIZES[dtype]
        begin, end = offsets
        if end - begin != declared or end > data_bytes:
            raise RouterLoadError(
                f"{where}: {dtype}{shape} needs {declared} bytes; the header gives bytes "
                f"{begin}..{end} of {data_bytes} in the file"
            )
        tensors[name] = {"dtype": dtype, "shape": list(shape)}
    return tensors


def check_saved_arrays(directory: Path, document: dict[str, Any]) -> None:
    """Check ``arrays.safetensors`` against ``router.json`` before any array is read.

    Raises:
        RouterLoadError: naming the file and the array or field, and what was expected.
    """
    arrays_path = directory / "arrays.safetensors"
    meta_path = directory / "router.json"
    tensors = read_header(arrays_path)
    manifest = document.get("arrays")
    digest = document.get("digest")
    if manifest is None and digest is None:
        return  # saved before the manifest existed
    if not isinstance(manifest, dict) or not isinstance(digest, str):
        raise RouterLoadError(
            f"{meta_path}: fields 'arrays' (an object) and 'digest' (a string) go together"
        )
    for name, entry in manifest.items():
        if name not in tensors:
            raise RouterLoadError(
                f"{arrays_path}: array {name!r} is missing (router.json lists it)"
            )
        found = tensors[name]
        expected = entry if isinstance(entry, dict) else {}
        for key in ("dtype", "shape"):
            if found[key] != expected.get(key):
                raise RouterLoadError(
                    f"{arrays_path}, array {name!r}: {key} {found[key]} where router.json "
                    f"expects {expected.get(key)}"
                )
    extra = sorted(set(tensors) - set(manifest))
    if extra:
        raise RouterLoadError(
            f"{arrays_path}: array(s) {', '.join(map(repr, extra))} not listed in router.json"
        )
    candidates = [str(c) for c in document["candidates"]]
    if digest != state_digest(candidates, manifest):
        raise RouterLoadError(
            f"{meta_path}, field 'candidates': the names do not match those the arrays were "
            "saved for (digest mismatch: renamed, reordered, added or removed); restore them"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
