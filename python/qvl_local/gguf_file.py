"""GGUF files as the rest of the package sees them: validated metadata and a tensor table.

The header is parsed by the C++ core, which checks every length and offset against the file size
before anything is allocated (gguf-py's reader trusts the header and needs seconds for a vocabulary
of 150k strings); the tensors stay in the memory map and are never copied.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from .errors import ModelFormatError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_name: str  # "Q4_K", "F16", ...
    type_id: int
    shape: tuple[int, ...]  # ggml order: shape[0] is the contiguous dimension
    offset: int  # absolute byte offset in the file
    nbytes: int


class GGUFFile:
    """A validated GGUF file; raises ModelFormatError (a ValueError) for anything malformed."""

    def __init__(self, path: str | Path):
        from . import _core

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model file not found: {self.path}")
        self.handle = _core.GgufFile(str(self.path))
        self.version: int = self.handle.version
        self.metadata: dict[str, Any] = self.handle.metadata()
        self.tensors: dict[str, TensorInfo] = {
            name: TensorInfo(name, type_name, type_id, tuple(dims), offset, nbytes)
            for name, type_name, type_id, dims, offset, nbytes in self.handle.tensors()
        }

    @property
    def value_types(self) -> dict[str, tuple[gguf.GGUFValueType, gguf.GGUFValueType | None]]:
        """Each key's GGUF value type (and element type for arrays), in file order: the Python values
        alone do not say whether 7 was stored as a uint32 or an int64."""
        return {
            key: (gguf.GGUFValueType(value_type), None if element is None else gguf.GGUFValueType(element))
            for key, (value_type, element) in self.handle.value_types().items()
        }

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def require(self, key: str) -> Any:
        if key not in self.metadata:
            raise ModelFormatError(f"{self.path}: missing metadata key '{key}'")
        return self.metadata[key]

    def tensor(self, name: str) -> TensorInfo:
        if name not in self.tensors:
            raise ModelFormatError(f"{self.path}: missing tensor '{name}'")
        return self.tensors[name]

    def tensor_bytes(self, name: str) -> np.ndarray:
        """The tensor's raw bytes: a read-only view of the memory map, no copy."""
        self.tensor(name)
        return self.handle.tensor_bytes(name)

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, arch={self.architecture!r}, tensors={len(self.tensors)})"
