"""The Ollama-layout store: name resolution, listing, removal with shared blobs, GGUF header summary."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from qvl_local.errors import ModelFormatError
from qvl_local.store import (
    MODEL_MEDIA_TYPE,
    PARAMS_MEDIA_TYPE,
    PROJECTOR_MEDIA_TYPE,
    TEMPLATE_MEDIA_TYPE,
    GGUFArray,
    InvalidModelNameError,
    ModelNotFoundError,
    ModelNotPulledError,
    ModelStore,
    ResolvedModel,
    default_models_dir,
    jinja_template_or_none,
    parse_name,
    read_gguf_header,
    resolve_model,
)
from registry_server import FIXTURE_TEMPLATE

CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
Q8 = "qwen2vl-tiny-Q8_0.gguf"
Q4 = "qwen2vl-tiny-Q4_K_M.gguf"
MMPROJ = "mmproj-qwen2vl-tiny-F16.gguf"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def add_model(store: ModelStore, fixtures: Path, name: str, *, gguf: str = Q8, mmproj: bool = True,
              config: dict | None = None, template: str | None = None) -> dict[str, str]:
    """Put a model into the store the way a pull leaves it. The GGUF blobs are symlinks to the
    fixtures (the store only reads them); the small blobs are real files."""
    store.blobs_dir.mkdir(parents=True, exist_ok=True)
    layers = [(MODEL_MEDIA_TYPE, fixtures / "gguf" / gguf)]
    if mmproj:
        layers.append((PROJECTOR_MEDIA_TYPE, fixtures / "gguf" / MMPROJ))
    entries, digests = [], {}
    for media_type, path in layers:
        digest = _fixture_digest(path)
        link = store.blob_path(digest)
        if not link.exists():
            link.symlink_to(path)
        entries.append({"mediaType": media_type, "digest": digest, "size": path.stat().st_size})
        digests[media_type] = digest
    if template is not None:
        entries.append(_write_small_blob(store, TEMPLATE_MEDIA_TYPE, template.encode()))
    params = json.dumps({"stop": ["<|im_end|>"], "model": name}).encode()
    entries.append(_write_small_blob(store, PARAMS_MEDIA_TYPE, params))
    config_entry = _write_small_blob(store, CONFIG_MEDIA_TYPE, json.dumps(config or {}).encode())
    manifest = {"schemaVersion": 2, "config": config_entry, "layers": entries}
    store.write_manifest(parse_name(name), json.dumps(manifest).encode())
    digests["config"] = config_entry["digest"]
    digests[PARAMS_MEDIA_TYPE] = entries[-1]["digest"]
    return digests


_DIGESTS: dict[Path, str] = {}


def _fixture_digest(path: Path) -> str:
    if path not in _DIGESTS:
        _DIGESTS[path] = digest_of(path.read_bytes())
    return _DIGESTS[path]


def _write_small_blob(store: ModelStore, media_type: str, data: bytes) -> dict:
    store.blob_path(digest_of(data)).write_bytes(data)
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


# -- resolution ---------------------------------------------------------------------------------


def test_plain_path_resolves_to_itself(fixtures: Path) -> None:
    path = fixtures / "gguf" / Q8
    assert resolve_model(path) == ResolvedModel(model_path=path)
    assert resolve_model(str(path)) == ResolvedModel(model_path=path)
    assert not resolve_model(path).from_store


def test_missing_file_is_reported_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        resolve_model(tmp_path / "absent.gguf", models_dir=tmp_path)


def test_name_resolves_to_model_and_projector(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    digests = add_model(store, fixtures, "qwen2vl-tiny:q8")

    expected = ResolvedModel(model_path=store.blob_path(digests[MODEL_MEDIA_TYPE]),
                             projector_path=store.blob_path(digests[PROJECTOR_MEDIA_TYPE]),
                             name=parse_name("qwen2vl-tiny:q8"))
    for spelling in ("qwen2vl-tiny:q8", "library/qwen2vl-tiny:q8", "registry.ollama.ai/library/qwen2vl-tiny:q8"):
        assert resolve_model(spelling, models_dir=tmp_path) == expected
    assert (tmp_path / "manifests" / "registry.ollama.ai" / "library" / "qwen2vl-tiny" / "q8").is_file()


def test_model_without_projector_resolves_to_none(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    add_model(store, fixtures, "text-only", mmproj=False)
    assert resolve_model("text-only", models_dir=tmp_path).projector_path is None


def test_models_dir_defaults_to_ollama_models(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    assert default_models_dir() == tmp_path
    monkeypatch.delenv("OLLAMA_MODELS")
    assert default_models_dir() == Path.home() / ".ollama" / "models"


def test_name_from_another_registry_is_found_without_its_host(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    add_model(store, fixtures, "127.0.0.1:5000/library/tiny:q8")
    assert store.find("tiny:q8") == parse_name("127.0.0.1:5000/library/tiny:q8")

    add_model(store, fixtures, "mirror.example/library/tiny:q8")
    with pytest.raises(ModelNotFoundError, match="ambiguous"):
        store.find("tiny:q8")


def test_unknown_name_says_how_to_pull(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPulledError, match="qvl-local pull nothing-here:latest"):
        resolve_model("nothing-here", models_dir=tmp_path)  # pull=False is the default here


def test_names_compare_without_case_as_registries_do(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    add_model(store, fixtures, "hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M")
    stored = parse_name("hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M")
    assert (tmp_path / "manifests" / "hf.co" / "ggml-org" / "Qwen2.5-VL-3B-Instruct-GGUF" / "Q4_K_M").is_file()

    for spelling in ("hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:q4_k_m", "HF.CO/GGML-ORG/qwen2.5-vl-3b-instruct-gguf:Q4_k_m",
                     "huggingface.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:q4_k_m",
                     "https://huggingface.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M"):
        assert store.find(spelling) == stored, spelling
        assert resolve_model(spelling, models_dir=tmp_path).name == stored
    with pytest.raises(ModelNotPulledError):
        resolve_model("hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q8_0", models_dir=tmp_path)


# -- the template layer -------------------------------------------------------------------------

QWEN2VL_JINJA = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
# The shape of Ollama's own qwen2.5vl template: Go's text/template, with ranges, slices and ends.
OLLAMA_GO_TEMPLATE = """{{- if .Messages }}{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}{{- if and (ne .Role "assistant") $last }}<|im_end|>
<|im_start|>assistant
{{ end }}{{- end }}{{- else }}{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""


@pytest.mark.parametrize(("template", "handed_over"), [(QWEN2VL_JINJA, True), (OLLAMA_GO_TEMPLATE, False),
                                                        (FIXTURE_TEMPLATE, False), (None, False)])
def test_template_layer_is_handed_over_only_when_jinja(fixtures: Path, tmp_path: Path, template: str | None,
                                                       handed_over: bool) -> None:
    add_model(ModelStore(tmp_path), fixtures, "tiny:q8", template=template)
    resolved = resolve_model("tiny:q8", models_dir=tmp_path)
    assert resolved.chat_template == (template if handed_over else None)


def test_jinja_templates_are_told_from_go_templates(fixtures: Path) -> None:
    real_jinja = json.loads((fixtures / "tokenizer" / "qwen2vl" / "chat_template.json").read_text())["chat_template"]
    assert jinja_template_or_none(real_jinja) == real_jinja
    assert jinja_template_or_none(QWEN2VL_JINJA) == QWEN2VL_JINJA
    for not_jinja in (OLLAMA_GO_TEMPLATE, FIXTURE_TEMPLATE, "{% for x in %}broken{% endfor %}", "plain text", "", None):
        assert jinja_template_or_none(not_jinja) is None


@pytest.mark.parametrize("text", ["library/..:passwd", "a/../../b", "library/m:..", "x/..:y"])
def test_traversal_names_never_reach_the_filesystem(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidModelNameError):
        resolve_model(text, models_dir=tmp_path)


def test_missing_blob_asks_for_a_new_pull(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    digests = add_model(store, fixtures, "broken")
    store.blob_path(digests[PROJECTOR_MEDIA_TYPE]).unlink()
    with pytest.raises(ModelNotFoundError, match="pull the model again"):
        resolve_model("broken", models_dir=tmp_path)


def test_invalid_manifest_is_a_format_error(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    path = store.manifest_path(parse_name("garbled"))
    path.parent.mkdir(parents=True)
    path.write_text('{"schemaVersion": 2, "config": {}, "layers": [')
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        resolve_model("garbled", models_dir=tmp_path)


# -- list and remove ----------------------------------------------------------------------------


def test_list_shows_size_and_quantization(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    add_model(store, fixtures, "from-ollama:q8", config={"file_type": "Q8_0", "model_format": "gguf"})
    add_model(store, fixtures, "no-config-hint:q4", gguf=Q4)  # quant type read from the GGUF header

    entries = {entry.name.short: entry for entry in store.list_models()}

    assert set(entries) == {"from-ollama:q8", "no-config-hint:q4"}
    assert entries["from-ollama:q8"].quantization == "Q8_0"
    assert entries["no-config-hint:q4"].quantization == "Q4_K_M"
    manifest = store.read_manifest(parse_name("from-ollama:q8"))
    assert entries["from-ollama:q8"].size == manifest.total_size
    gguf_bytes = (fixtures / "gguf" / Q8).stat().st_size + (fixtures / "gguf" / MMPROJ).stat().st_size
    assert gguf_bytes < entries["from-ollama:q8"].size < gguf_bytes + 1000


def test_remove_keeps_blobs_shared_with_other_models(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    q8 = add_model(store, fixtures, "tiny:q8")
    q4 = add_model(store, fixtures, "tiny:q4", gguf=Q4)  # same mmproj blob

    deleted = store.remove("tiny:q8")

    assert store.blob_path(q8[MODEL_MEDIA_TYPE]) in deleted
    assert not store.blob_path(q8[MODEL_MEDIA_TYPE]).exists()
    assert store.blob_path(q4[PROJECTOR_MEDIA_TYPE]).exists()  # shared: kept
    assert resolve_model("tiny:q4", models_dir=tmp_path).projector_path == store.blob_path(q4[PROJECTOR_MEDIA_TYPE])
    assert [entry.name.short for entry in store.list_models()] == ["tiny:q4"]

    store.remove("tiny:q4")
    assert list(store.blobs_dir.iterdir()) == []
    assert list(store.manifests_dir.iterdir()) == []  # empty host/namespace/model folders are pruned
    with pytest.raises(ModelNotFoundError):
        store.remove("tiny:q4")


def test_text_layers_are_readable(fixtures: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    add_model(store, fixtures, "tiny:q8")
    manifest = store.read_manifest(parse_name("tiny:q8"))
    assert json.loads(store.read_text_layer(manifest, PARAMS_MEDIA_TYPE))["stop"] == ["<|im_end|>"]


# -- GGUF header summary ------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", [Q8, Q4, MMPROJ])
def test_gguf_header_matches_the_fixture_inventory(fixtures: Path, file_name: str) -> None:
    inventory = json.loads((fixtures / "gguf" / "gguf_inventory.json").read_text())[file_name]
    expected_tensors, expected_kv = inventory["tensors"], inventory["kv"]

    header = read_gguf_header(fixtures / "gguf" / file_name)

    assert [(t.name, t.type_name, list(t.shape)) for t in header.tensors] == [
        (t["name"], t["type"], t["shape_ggml"]) for t in expected_tensors
    ]
    assert header.version == expected_kv["GGUF.version"]
    assert len(header.metadata) == expected_kv["GGUF.kv_count"]
    assert header.architecture == expected_kv["general.architecture"]
    for key, value in header.metadata.items():
        expected = expected_kv[key]
        if isinstance(expected, str) and expected.endswith(f"... ({len(value)} chars)"):
            assert value.startswith(expected.rsplit("... (", 1)[0]), key  # the inventory abbreviates
        elif isinstance(value, (int, str, bool)):
            assert expected == value, key
        elif isinstance(value, GGUFArray):
            assert expected_kv[key]["array_len"] == value.length, key


def test_truncated_gguf_is_a_format_error(fixtures: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((fixtures / "gguf" / Q8).read_bytes()[:100_000])
    with pytest.raises(ModelFormatError, match="truncated"):
        read_gguf_header(cut)


def test_non_gguf_is_a_format_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelFormatError, match="not a GGUF"):
        read_gguf_header(fake)
