"""The local model store, laid out exactly like Ollama's so both tools share their downloads.

    $OLLAMA_MODELS (default ~/.ollama/models)/
        manifests/<host>/<namespace>/<model>/<tag>    the registry's manifest, byte for byte
        blobs/sha256-<hex>                            one file per layer, named by its digest

A model is a manifest whose layers point at blobs: the GGUF weights (`application/vnd.ollama.image.model`),
the vision projector (`...projector`, llama.cpp's mmproj), and small text layers (template, params, license).
Blobs are shared between manifests, so removing a model deletes only the blobs no other manifest uses.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import jinja2
from jinja2.ext import loopcontrols

from .errors import ModelFormatError, QvlError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
# Hugging Face's Ollama-compatible registry: `hf.co/{user}/{repo}[:{quant}]` serves a GGUF repo's file of
# that quantization as the model layer and its mmproj as the projector layer. Both spellings of the
# host reach it; models are stored under `hf.co`, as Ollama stores them.
HF_HOST = "hf.co"
_HF_HOST_SPELLINGS = {HF_HOST, "huggingface.co", "www.huggingface.co"}

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"
TEMPLATE_MEDIA_TYPE = "application/vnd.ollama.image.template"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"
LICENSE_MEDIA_TYPE = "application/vnd.ollama.image.license"
SYSTEM_MEDIA_TYPE = "application/vnd.ollama.image.system"

# A manifest is a few hundred bytes; anything far larger is not one (and must not be read into memory).
MAX_MANIFEST_BYTES = 1 << 20


class InvalidModelNameError(QvlError, ValueError):
    """A model name does not follow `[host/][namespace/]model[:tag]` or uses forbidden characters."""


class ModelNotFoundError(QvlError, LookupError):
    """The model is neither in the local store nor a file (or the registry does not know it)."""


class ModelNotPulledError(ModelNotFoundError):
    """A model name whose manifest or blobs are not (completely) in the local store: pulling it helps.
    `name` is the model concerned."""

    def __init__(self, message: str, name: ModelName) -> None:
        super().__init__(message)
        self.name = name


# ---------------------------------------------------------------------------------------------------
# Names and digests. Both become path components, so they are validated before any path is built:
# a part starts with a letter, digit or underscore and holds no '/', so '..' or an absolute path cannot
# sneak in. The rules follow Ollama's (namespaces have no dots; a host may carry a port).

_PART_PATTERNS = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,349}(:[0-9]{1,5})?"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "Hugging Face user": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}
_DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name; `str()` gives `host/namespace/model:tag`."""

    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def short(self) -> str:
        """The name as a user types it: default host and namespace left out."""
        prefix = ""
        if self.host != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)


def _check_part(kind: str, value: str, text: str) -> str:
    if not _PART_PATTERNS[kind].fullmatch(value) or ".." in value:
        raise InvalidModelNameError(
            f"invalid model name {text!r}: bad {kind} {value!r} (use letters, digits, '_', '-', '.'; "
            f"form [host/][namespace/]model[:tag])"
        )
    return value


def split_scheme(text: str) -> tuple[str | None, str]:
    """`http://host/ns/model` -> ('http', 'host/ns/model'); a name without a scheme -> (None, name)."""
    for scheme in ("http", "https"):
        if text.startswith(f"{scheme}://"):
            return scheme, text[len(scheme) + 3 :]
    return None, text


def has_explicit_host(text: str) -> bool:
    """Whether a model name names its registry host (three '/'-separated parts)."""
    return split_scheme(text)[1].count("/") == 2


def parse_name(text: str, *, default_host: str = DEFAULT_HOST) -> ModelName:
    """Parse `[http(s)://][host/][namespace/]model[:tag]`, filling in the defaults.
    `huggingface.co/...` is read as `hf.co/...`."""
    _, rest = split_scheme(text.strip())
    if not rest or len(rest) > 512:
        raise InvalidModelNameError(f"invalid model name {text!r}: empty or longer than 512 characters")
    pieces = rest.split("/")
    if len(pieces) > 3:
        raise InvalidModelNameError(f"invalid model name {text!r}: too many '/' (form [host/][namespace/]model[:tag])")
    _check_piece_layout(pieces, text)
    last = pieces[-1]
    model, _, tag = last.rpartition(":") if ":" in last else (last, "", DEFAULT_TAG)
    host = pieces[0] if len(pieces) == 3 else default_host
    host = HF_HOST if host.lower() in _HF_HOST_SPELLINGS else host
    namespace = pieces[-2] if len(pieces) >= 2 else DEFAULT_NAMESPACE
    namespace_kind = "Hugging Face user" if host == HF_HOST else "namespace"
    return ModelName(
        host=_check_part("host", host, text),
        namespace=_check_part(namespace_kind, namespace, text),
        model=_check_part("model", model, text),
        tag=_check_part("tag", tag, text),
    )


def _check_piece_layout(pieces: list[str], text: str) -> None:
    """Errors that name what the user got wrong, before a piece is misread as another part."""
    first_is_host = len(pieces) == 3
    for index, piece in enumerate(pieces[:-1]):
        if ":" in piece and not (index == 0 and first_is_host):  # a host may carry its port
            raise InvalidModelNameError(
                f"invalid model name {text!r}: ':' starts the tag, which must come last "
                f"(form [host[:port]/][namespace/]model[:tag])"
            )
    if not first_is_host and pieces[0].lower() in _HF_HOST_SPELLINGS:
        raise InvalidModelNameError(
            f"invalid model name {text!r}: Hugging Face models are named {HF_HOST}/{{user}}/{{repo}}[:{{quant}}]"
        )


def _folded(name: ModelName) -> tuple[str, ...]:
    """The name's parts for a case-insensitive comparison: registries treat `Q4_K_M` and `q4_k_m` alike."""
    return tuple(part.casefold() for part in name.parts)


def check_digest(digest: str) -> str:
    """Return the hex part of a `sha256:<64 hex>` digest; anything else (e.g. a path) is rejected."""
    if not isinstance(digest, str) or not _DIGEST_PATTERN.fullmatch(digest):
        raise ModelFormatError(f"invalid blob digest {digest!r} (expected sha256:<64 lowercase hex digits>)")
    return digest[len("sha256:") :]


# ---------------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]
    raw: bytes = field(repr=False)

    def layer(self, media_type: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.media_type == media_type), None)

    @property
    def blobs(self) -> tuple[Layer, ...]:
        """Every blob the manifest needs: its config, then its layers."""
        return (self.config, *self.layers)

    @property
    def total_size(self) -> int:
        return sum(blob.size for blob in self.blobs)


def single_file_family(manifest: Manifest, config: dict) -> str | None:
    """The model family of a GGUF model that holds its vision encoder in its one model layer, as Ollama's
    config blob tells it: a family, no `clip` among the families and no projector layer. None when
    the config does not say so."""
    if manifest.layer(PROJECTOR_MEDIA_TYPE) is not None or config.get("model_format") != "gguf":
        return None
    families = config.get("model_families")
    if isinstance(families, list) and "clip" in families:
        return None
    family = config.get("model_family")
    return family if isinstance(family, str) else None


def _parse_layer(entry: object, where: str) -> Layer:
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{where}: expected an object, got {type(entry).__name__}")
    media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    if not isinstance(media_type, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ModelFormatError(f"{where}: needs a string mediaType and a non-negative integer size")
    check_digest(digest)
    return Layer(media_type=media_type, digest=digest, size=size)


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and validate a Docker v2 / Ollama manifest (digests are checked before they become paths)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ModelFormatError(f"manifest is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("schemaVersion") != 2:
        raise ModelFormatError("manifest is not a schemaVersion 2 object")
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelFormatError("manifest has no layers")
    return Manifest(
        config=_parse_layer(document.get("config"), "manifest config"),
        layers=tuple(_parse_layer(entry, f"manifest layer {i}") for i, entry in enumerate(layers)),
        raw=raw,
    )


# ---------------------------------------------------------------------------------------------------
# The store


def default_models_dir() -> Path:
    """Ollama's models folder: $OLLAMA_MODELS, else ~/.ollama/models."""
    configured = os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


@dataclass(frozen=True)
class ModelEntry:
    """One row of `ModelStore.list_models()`."""

    name: ModelName
    size: int  # bytes of all blobs of the model
    modified: float  # manifest mtime, seconds since the epoch
    quantization: str | None  # e.g. "Q8_0"; None when neither the config nor the GGUF says


class ModelStore:
    """An Ollama-layout model folder. Reads never create anything; writes are atomic renames."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_models_dir()

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / f"sha256-{check_digest(digest)}"

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests_dir.joinpath(*name.parts)

    def has_blob(self, layer: Layer) -> bool:
        """A blob counts as present when a file of the right size has its final name (names are only
        given after the digest was verified, by us or by Ollama)."""
        path = self.blob_path(layer.digest)
        return path.is_file() and path.stat().st_size == layer.size

    def read_manifest(self, name: ModelName) -> Manifest:
        path = self.manifest_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ModelNotPulledError(
                f"model {name.short} is not in {self.root} (download it with `qvl-local pull {name.short}`)", name
            ) from None
        try:
            return parse_manifest(raw)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None

    def write_manifest(self, name: ModelName, raw: bytes) -> Path:
        path = self.manifest_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name per writer, then an atomic rename: concurrent pulls never mix bytes.
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
            file.write(raw)
        os.replace(file.name, path)
        return path

    def names(self) -> list[ModelName]:
        """Every model with a manifest, in name order; files that are not valid names are ignored."""
        found = []
        for path in self.manifests_dir.glob("*/*/*/*"):
            host, namespace, model, tag = path.relative_to(self.manifests_dir).parts
            if not path.is_file():
                continue
            try:
                found.append(parse_name(f"{host}/{namespace}/{model}:{tag}"))
            except InvalidModelNameError:
                continue
        return sorted(found, key=str)

    def find(self, text: str) -> ModelName:
        """The stored model a user means. Names compare without case, as registries treat them (the
        exact spelling wins). Without a host, the default registry's copy wins; a model pulled from
        another registry is found too when exactly one host has it."""
        name = parse_name(text)
        if self.manifest_path(name).is_file():
            return name
        # Compare from the host on when the name gives one, else from the namespace on.
        first_part = 0 if has_explicit_host(text) else 1
        wanted = _folded(name)[first_part:]
        matches = [other for other in self.names() if _folded(other)[first_part:] == wanted]
        on_named_host = [other for other in matches if other.host.casefold() == name.host.casefold()]
        chosen = on_named_host or matches
        if len(chosen) > 1:
            choices = ", ".join(str(other) for other in chosen)
            raise ModelNotFoundError(f"{text!r} is ambiguous: the store holds several models of that name ({choices})")
        return chosen[0] if chosen else name  # read_manifest() reports a missing one, with a hint

    def resolve(self, text: str) -> ResolvedModel:
        """The model's GGUF, its projector (mmproj) GGUF when the manifest has one, and its template
        layer when that is a Jinja template. A model without a projector layer is either text only or
        Ollama's single-file layout, whose model blob holds the vision tensors (`v.*`) too."""
        name = self.find(text)
        manifest = self.read_manifest(name)
        model_layer = manifest.layer(MODEL_MEDIA_TYPE)
        if model_layer is None:
            raise ModelFormatError(f"model {name.short} has no {MODEL_MEDIA_TYPE} layer")
        projector_layer = manifest.layer(PROJECTOR_MEDIA_TYPE)
        for layer in filter(None, (model_layer, projector_layer)):
            if not self.has_blob(layer):
                raise ModelNotPulledError(
                    f"model {name.short}: blob {layer.digest} is missing or incomplete in {self.blobs_dir} "
                    f"(pull the model again)", name
                )
        return ResolvedModel(
            model_path=self.blob_path(model_layer.digest),
            projector_path=self.blob_path(projector_layer.digest) if projector_layer else None,
            chat_template=jinja_template_or_none(self.read_text_layer(manifest, TEMPLATE_MEDIA_TYPE)),
            name=name,
        )

    def list_models(self) -> list[ModelEntry]:
        entries = []
        for name in self.names():
            try:
                manifest = self.read_manifest(name)
            except ModelFormatError:
                continue  # someone else's broken file: `list` shows what can be used
            entries.append(
                ModelEntry(
                    name=name,
                    size=manifest.total_size,
                    modified=self.manifest_path(name).stat().st_mtime,
                    quantization=self._quantization(manifest),
                )
            )
        return entries

    def read_text_layer(self, manifest: Manifest, media_type: str) -> str | None:
        """The content of a small text layer (template, params, license, system), if present."""
        layer = manifest.layer(media_type)
        if layer is None or not self.has_blob(layer) or layer.size > MAX_MANIFEST_BYTES:
            return None
        return self.blob_path(layer.digest).read_text(encoding="utf-8", errors="replace")

    def read_config(self, manifest: Manifest) -> dict:
        """Ollama's config blob (model_format, model_family, file_type, ...); {} when it is absent,
        too large or not a JSON object."""
        if not self.has_blob(manifest.config) or manifest.config.size > MAX_MANIFEST_BYTES:
            return {}
        try:
            config = json.loads(self.blob_path(manifest.config.digest).read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        return config if isinstance(config, dict) else {}

    def _quantization(self, manifest: Manifest) -> str | None:
        # Ollama's config blob says it in one small JSON read; otherwise ask the GGUF header.
        file_type = self.read_config(manifest).get("file_type")
        if isinstance(file_type, str) and file_type:
            return file_type
        model_layer = manifest.layer(MODEL_MEDIA_TYPE)
        if model_layer is None or not self.has_blob(model_layer):
            return None
        try:
            return read_gguf_header(self.blob_path(model_layer.digest)).file_type_name
        except ModelFormatError:
            return None

    def remove(self, text: str) -> list[Path]:
        """Delete a model's manifest and the blobs no other manifest references; returns deleted blobs."""
        name = self.find(text)
        manifest = self.read_manifest(name)
        manifest_path = self.manifest_path(name)
        manifest_path.unlink()
        self._prune_empty_dirs(manifest_path.parent)
        still_used = self._referenced_digests()
        deleted = []
        for digest in dict.fromkeys(blob.digest for blob in manifest.blobs):
            path = self.blob_path(digest)
            if digest not in still_used and path.exists():
                path.unlink()
                deleted.append(path)
        return deleted

    def _referenced_digests(self) -> set[str]:
        digests: set[str] = set()
        for name in self.names():
            try:
                digests.update(blob.digest for blob in self.read_manifest(name).blobs)
            except ModelFormatError:
                continue
        return digests

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.manifests_dir and directory.is_relative_to(self.manifests_dir):
            try:
                directory.rmdir()
            except OSError:  # not empty: a sibling model lives here
                return
            directory = directory.parent


@dataclass(frozen=True)
class ResolvedModel:
    """What a model path or name stands for: the files to load and what the store adds to them.

    `projector_path` is the manifest's projector layer (llama.cpp's mmproj); None for a file path (the
    caller may look for a projector beside it) and for a stored model without one. `chat_template` is
    the manifest's template layer when it is a Jinja template, for use when the GGUF carries none.
    `name` is the stored model's name; None for a file path."""

    model_path: Path
    projector_path: Path | None = None
    chat_template: str | None = None
    name: ModelName | None = None

    @property
    def from_store(self) -> bool:
        return self.name is not None


def resolve_model(
    name_or_path: str | os.PathLike[str],
    *,
    models_dir: str | os.PathLike[str] | None = None,
    pull: bool = False,
    progress: bool | None = None,
) -> ResolvedModel:
    """An existing file is used as is (no projector implied); anything else is a model name in the
    store. With `pull`, a name the store lacks (or holds incompletely) is pulled from its registry
    first, as `ollama run` does; without it, that is a ModelNotPulledError."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return ResolvedModel(model_path=path)
    text = os.fspath(name_or_path)
    if path.suffix.lower() == ".gguf" or text.startswith((".", "~", os.sep)):
        raise ModelNotFoundError(f"no such model file: {text}")
    store = ModelStore(models_dir)
    try:
        return store.resolve(text)
    except ModelNotPulledError as missing:
        if not pull:
            raise
        # The name as typed keeps its scheme; a short name that found a model of another registry
        # (whose blobs are gone) is pulled from that registry.
        source = text if parse_name(text) == missing.name else str(missing.name)
    from .registry import progress_shown, pull as pull_model  # registry imports this module

    if progress_shown(progress):
        print(f"pulling {source} (not in {store.root} yet)", file=sys.stderr)
    pull_model(source, models_dir=store.root, progress=progress)
    return store.resolve(text)


def jinja_template_or_none(text: str | None) -> str | None:
    """`text` when it is a Jinja chat template, as GGUF files carry them; None for anything else. Ollama's
    template layers are Go templates (`{{ .Prompt }}`, `{{ if .System }}`, never a `{% %}` statement),
    whose meaning differs: they are not interpreted, the model's own template applies instead."""
    if not text or "{%" not in text:
        return None
    try:
        jinja2.Environment(extensions=[loopcontrols]).parse(text)
    except jinja2.TemplateSyntaxError:
        return None
    return text


# ---------------------------------------------------------------------------------------------------
# A summary of a GGUF header for `list` and `show`, read with the package's own validated parser.

# Arrays up to this length are kept whole (e.g. rope sections); longer ones only by length.
_SHORT_ARRAY = 16


@dataclass(frozen=True)
class GGUFArray:
    """A long metadata array, summarised: element type and length."""

    element_type: str
    length: int


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    type_name: str  # e.g. "Q8_0", "F32"
    shape: tuple[int, ...]  # ggml order, ne[0] first


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, object]
    tensors: tuple[GGUFTensorInfo, ...]

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def file_type_name(self) -> str | None:
        """general.file_type as llama.cpp names it ("Q8_0", "Q4_K_M"), else the dominant tensor type."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int):
            try:
                return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
            except ValueError:
                pass
        histogram = self.tensor_type_histogram()
        return max(histogram, key=histogram.__getitem__) if histogram else None

    def tensor_type_histogram(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tensor in self.tensors:
            counts[tensor.type_name] = counts.get(tensor.type_name, 0) + 1
        return counts


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """The metadata and tensor table of a GGUF file, long arrays summarised by length."""
    from .gguf_file import GGUFFile

    file = GGUFFile(path)
    metadata: dict[str, object] = {}
    for key, (value_type, element_type) in file.value_types.items():
        value = file.metadata[key]
        if value_type == gguf.GGUFValueType.ARRAY:
            value = list(value) if len(value) <= _SHORT_ARRAY else GGUFArray(element_type.name, len(value))
        metadata[key] = value
    tensors = tuple(GGUFTensorInfo(t.name, t.type_name, t.shape) for t in file.tensors.values())
    return GGUFHeader(version=file.version, metadata=metadata, tensors=tensors)
