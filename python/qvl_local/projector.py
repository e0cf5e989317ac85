"""Which vision projector (llama.cpp's `mmproj` GGUF) belongs to a model file, found in its folder.

A downloads folder often holds several models and their projectors side by side, named after the
repository they came from: `Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf` beside `mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf`,
`Qwen2-VL-2B.Q4_K_M.gguf` beside `Qwen2-VL-2B.mmproj-f16.gguf`, but also `mmproj-F16.gguf` or
`mmproj-model-f32.gguf`. The choice, among the `*mmproj*.gguf` files of the folder:

1. only projectors that fit the model: a projector type of the model's family, and an output width
   (`clip.vision.projection_dim`) equal to the text hidden size: a projector that does not fit is never
   chosen, whatever its name;
2. of those, the ones whose name matches the model's (both with the quantization suffix and the word
   `mmproj` taken out), when there are any;
3. exactly one left is the answer; several is an error that lists them.

A model that carries its vision encoder itself (Ollama's single-file layout, `config.holds_vision_encoder`)
needs none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .config import holds_vision_encoder
from .errors import ModelFormatError, QvlError
from .gguf_file import GGUFFile

# The projector types that can serve each text architecture (Qwen2.5-VL's text is `qwen2vl` too).
PROJECTOR_TYPES = {
    "qwen2vl": ("qwen2vl_merger", "qwen2.5vl_merger"),
    "qwen3vl": ("qwen3vl_merger",),
}

_QUANT_SUFFIX = re.compile(r"[-_.](i1-)?((i?q\d[a-z0-9_]*)|bf16|fp16|fp32|f16|f32)$")
_MMPROJ_WORD = re.compile(r"(^|[-_.])mmproj([-_.]|$)")
_SEPARATORS = re.compile(r"[-_.]+")


class AmbiguousProjectorError(QvlError, ValueError):
    """Several projector files beside a model fit it; the caller has to name one."""

    def __init__(self, model_path: Path, candidates: list[Path]) -> None:
        self.model_path, self.candidates = model_path, candidates
        super().__init__(self.describe("pass mmproj= to choose one"))

    def describe(self, how_to_choose: str) -> str:
        listing = ", ".join(path.name for path in self.candidates)
        return f"several vision projectors beside {self.model_path.name} fit it ({listing}); {how_to_choose}"


class NoFittingProjectorError(QvlError, ValueError):
    """Projector files lie beside a model, but none of them fits it."""

    def __init__(self, model_path: Path, reasons: list[str]) -> None:
        self.model_path, self.reasons = model_path, reasons
        super().__init__(self.describe("pass mmproj= to name the right one, or mmproj=False to load the text model alone"))

    def describe(self, how_to_choose: str) -> str:
        return (f"no vision projector beside {self.model_path.name} fits it ({'; '.join(self.reasons)}); "
                f"{how_to_choose}")


def find_projector(model_path: str | Path) -> Path | None:
    """The projector file that belongs to `model_path`, from its folder; None when the folder has none
    or the model holds its vision tensors itself. Raises AmbiguousProjectorError or
    NoFittingProjectorError when the folder's projectors do not single one out."""
    model_path = Path(model_path)
    candidates = sorted(path for path in model_path.parent.iterdir()
                        if path.is_file() and path.name.lower().endswith(".gguf") and "mmproj" in path.name.lower()
                        and path != model_path)
    if not candidates:
        return None
    model = _ModelFacts.read(model_path)
    if model.has_own_vision:
        return None
    fitting, reasons = [], []
    for candidate in candidates:
        reason = model.misfit(candidate)
        if reason is None:
            fitting.append(candidate)
        else:
            reasons.append(f"{candidate.name}: {reason}")
    if not fitting:
        raise NoFittingProjectorError(model_path, reasons)
    named_alike = [path for path in fitting if name_stem(path) == name_stem(model_path)]
    chosen = named_alike or fitting
    if len(chosen) > 1:
        raise AmbiguousProjectorError(model_path, chosen)
    return chosen[0]


def name_stem(path: Path) -> str:
    """A file name reduced to what model and projector share: `mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf`
    and `Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf` both give `qwen2-5-vl-3b-instruct`."""
    stem = path.name.lower().removesuffix(".gguf")
    stem = _MMPROJ_WORD.sub("-", stem).strip("-_.")
    stem = _QUANT_SUFFIX.sub("", stem)
    return _SEPARATORS.sub("-", stem).strip("-")


@dataclass(frozen=True)
class _ModelFacts:
    """What the choice needs to know about the text model."""

    architecture: str
    hidden_size: int | None
    has_own_vision: bool

    @classmethod
    def read(cls, path: Path) -> _ModelFacts:
        file = GGUFFile(path)
        architecture = file.architecture
        hidden_size = file.get(f"{architecture}.embedding_length")
        return cls(
            architecture=architecture,
            hidden_size=hidden_size if isinstance(hidden_size, int) else None,
            has_own_vision=holds_vision_encoder(file),
        )

    def misfit(self, projector_path: Path) -> str | None:
        """Why the projector cannot serve this model; None when it can."""
        try:
            projector = GGUFFile(projector_path)
        except (ModelFormatError, OSError) as error:
            return f"unreadable ({error})"
        projector_type = projector.get("clip.projector_type")
        allowed = PROJECTOR_TYPES.get(self.architecture)
        if allowed is not None and projector_type not in allowed:
            return f"projector type {projector_type!r}, not one of {self.architecture}'s {list(allowed)}"
        width = projector.get("clip.vision.projection_dim")
        if self.hidden_size is not None and isinstance(width, int) and width != self.hidden_size:
            return f"output width {width}, the model's hidden size is {self.hidden_size}"
        return None
