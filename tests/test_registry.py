"""Pulling from a real HTTP registry on 127.0.0.1 (tests/registry_server.py) into a temporary store."""
from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from qvl_local.errors import ModelFormatError, QvlError
from qvl_local.registry import (
    DigestMismatchError,
    DiskFullError,
    RegistryAuthError,
    RegistryError,
    pull,
)
from qvl_local.store import (
    MODEL_MEDIA_TYPE,
    PROJECTOR_MEDIA_TYPE,
    InvalidModelNameError,
    ModelNotFoundError,
    ModelNotPulledError,
    ModelStore,
    parse_name,
    read_gguf_header,
    resolve_model,
)
from fixture_tools import ollama_qwen3vl_like, ollama_qwen25vl, without_chat_template
from registry_server import CONFIG_MEDIA_TYPE, RegistryServer, bytes_blob, file_digest

NAME = "library/qwen2vl-tiny:q8_0"
MiB = 1 << 20


@pytest.fixture
def server(fixtures: Path):
    with RegistryServer() as running:
        running.publish_fixture_model(fixtures, NAME)
        yield running


@pytest.fixture
def published(server: RegistryServer, fixtures: Path):
    return server.publish_fixture_model(fixtures, NAME)


def pull_from(server: RegistryServer, store_dir: Path, name: str = NAME, **options):
    options = {"retries": 0, "backoff_s": 0.0, "progress": False, **options}
    return pull(name, registry=server.url, models_dir=store_dir, **options)


def sha256_of(path: Path) -> str:
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"


def blob_names(store_dir: Path) -> set[str]:
    return {path.name for path in (store_dir / "blobs").iterdir()}


def expected_blob_names(published) -> set[str]:
    blobs = [published.config, *published.layers.values()]
    return {f"sha256-{blob.digest.removeprefix('sha256:')}" for blob in blobs}


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("qwen2-vl", "registry.ollama.ai/library/qwen2-vl:latest"),
        ("qwen2.5vl:3b", "registry.ollama.ai/library/qwen2.5vl:3b"),
        ("someone/model_x:Q4_K_M", "registry.ollama.ai/someone/model_x:Q4_K_M"),
        ("127.0.0.1:5000/ns/m:t", "127.0.0.1:5000/ns/m:t"),
        ("https://example.com/ns/m", "example.com/ns/m:latest"),
        ("hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M", "hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M"),
        ("hf.co/Qwen/Qwen3-VL-2B-Instruct-GGUF", "hf.co/Qwen/Qwen3-VL-2B-Instruct-GGUF:latest"),
        ("huggingface.co/bartowski/Qwen2-VL-2B-Instruct-GGUF:q4_k_m", "hf.co/bartowski/Qwen2-VL-2B-Instruct-GGUF:q4_k_m"),
        ("https://HuggingFace.co/user.name/repo:Q8_0", "hf.co/user.name/repo:Q8_0"),
    ],
)
def test_parse_name_fills_ollama_defaults(text: str, expected: str) -> None:
    assert str(parse_name(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "../x", "ns/../m", "m:..", "a/b/c/d", ".hidden", "ns.with.dots/m", "m:", "a b", "m:t/x", "x" * 81,
     "/abs/m", "ns/m:t\x00", "host:port/ns/m"],
)
def test_parse_name_rejects_bad_names(text: str) -> None:
    with pytest.raises(InvalidModelNameError):
        parse_name(text)


@pytest.mark.parametrize(("text", "says"), [("model:../x", "':' starts the tag, which must come last"),
                                            ("m:t/x", "':' starts the tag"),
                                            ("hf.co/Qwen2-VL-2B-Instruct-GGUF", "hf.co/{user}/{repo}[:{quant}]")])
def test_bad_names_are_explained_in_the_users_terms(text: str, says: str) -> None:
    with pytest.raises(InvalidModelNameError) as error:
        parse_name(text)
    assert says in str(error.value)
    assert "bad namespace" not in str(error.value)  # 'model:..' is not a namespace the user wrote


def test_invalid_name_fails_before_any_request(server: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(InvalidModelNameError):
        pull_from(server, tmp_path, "../../etc/passwd")
    assert server.requests == []


# -- the happy path -----------------------------------------------------------------------------


def test_full_pull_in_parallel_ranges_gives_ollama_layout(
    server: RegistryServer, published, fixtures: Path, tmp_path: Path
) -> None:
    result = pull_from(server, tmp_path, part_size=4 * MiB, max_parallel=4)

    manifest_path = tmp_path / "manifests" / server.netloc / "library" / "qwen2vl-tiny" / "q8_0"
    assert manifest_path.read_bytes() == published.manifest
    # Nothing but the final blobs is left: no partial files, state files or locks.
    assert blob_names(tmp_path) == expected_blob_names(published)
    assert result.model_path == tmp_path / "blobs" / f"sha256-{published.layers[MODEL_MEDIA_TYPE].digest[7:]}"
    assert sha256_of(result.model_path) == file_digest(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf")
    assert sha256_of(result.mmproj_path) == file_digest(fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf")
    assert result.downloaded_bytes == published.total_size and result.reused_bytes == 0
    # The 46 MiB weights came in 4 MiB ranges, each byte exactly once.
    model_digest = published.layers[MODEL_MEDIA_TYPE].digest
    model_requests = [r for r in server.blob_requests() if r.path.endswith(model_digest)]
    assert len(model_requests) == -(-published.layers[MODEL_MEDIA_TYPE].size // (4 * MiB))
    assert all(r.status == 206 for r in model_requests)
    assert server.total_blob_bytes_sent() == published.total_size
    resolved = resolve_model(str(result.name), models_dir=tmp_path)
    assert (resolved.model_path, resolved.projector_path) == (result.model_path, result.mmproj_path)


def test_present_blobs_are_never_fetched_again(server: RegistryServer, published, tmp_path: Path) -> None:
    pull_from(server, tmp_path)
    before = len(server.blob_requests())

    again = pull_from(server, tmp_path)

    assert len(server.blob_requests()) == before
    assert again.downloaded_bytes == 0 and again.reused_bytes == published.total_size


def test_blobs_pulled_by_ollama_are_reused(server: RegistryServer, published, fixtures: Path, tmp_path: Path) -> None:
    # Ollama's store already holds the two GGUF blobs under their final names.
    (tmp_path / "blobs").mkdir()
    for media_type, fixture in [(MODEL_MEDIA_TYPE, "qwen2vl-tiny-Q8_0.gguf"), (PROJECTOR_MEDIA_TYPE, "mmproj-qwen2vl-tiny-F16.gguf")]:
        shutil.copyfile(fixtures / "gguf" / fixture, tmp_path / "blobs" / f"sha256-{published.layers[media_type].digest[7:]}")

    result = pull_from(server, tmp_path)

    fetched = {r.path.rsplit("/", 1)[-1] for r in server.blob_requests()}
    assert published.layers[MODEL_MEDIA_TYPE].digest not in fetched
    assert published.layers[PROJECTOR_MEDIA_TYPE].digest not in fetched
    big = published.layers[MODEL_MEDIA_TYPE].size + published.layers[PROJECTOR_MEDIA_TYPE].size
    assert result.downloaded_bytes == published.total_size - big


def test_server_that_ignores_range_still_gives_the_right_blob(server: RegistryServer, published, tmp_path: Path) -> None:
    server.faults.ignore_range = True
    result = pull_from(server, tmp_path, part_size=16 * MiB)
    assert sha256_of(result.model_path) == published.layers[MODEL_MEDIA_TYPE].digest


def test_blobs_redirected_to_another_host(server: RegistryServer, published, fixtures: Path, tmp_path: Path) -> None:
    try:  # a different loopback address when the OS routes it (Linux does), else another port
        cdn = RegistryServer(host="127.0.0.2")
    except OSError:
        cdn = RegistryServer()
    with cdn:
        cdn.publish_fixture_model(fixtures, NAME)
        server.faults.redirect_blobs_to = cdn.url

        result = pull_from(server, tmp_path, part_size=16 * MiB)

        assert {r.status for r in server.blob_requests()} == {307}
        assert server.total_blob_bytes_sent() == 0
        assert cdn.total_blob_bytes_sent() == published.total_size
    assert sha256_of(result.model_path) == published.layers[MODEL_MEDIA_TYPE].digest


def test_concurrent_pulls_of_the_same_model_share_the_work(server: RegistryServer, published, tmp_path: Path) -> None:
    results, errors = [], []

    def pull_once() -> None:
        try:
            results.append(pull_from(server, tmp_path, part_size=8 * MiB))
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=pull_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 2
    assert sum(r.downloaded_bytes for r in results) == published.total_size
    assert server.total_blob_bytes_sent() == published.total_size
    assert blob_names(tmp_path) == expected_blob_names(published)
    for result in results:
        assert sha256_of(result.model_path) == published.layers[MODEL_MEDIA_TYPE].digest


# -- interrupted downloads ----------------------------------------------------------------------


def test_cut_download_resumes_without_refetching(server: RegistryServer, published, tmp_path: Path) -> None:
    model = published.layers[MODEL_MEDIA_TYPE]
    cut = 10 * MiB + 12345
    server.faults.cut_after = cut  # the first blob response over `cut` bytes long is cut there
    server.faults.cuts = 1

    with pytest.raises(RegistryError, match="gave up"):
        pull_from(server, tmp_path, name=NAME, part_size=64 * MiB)

    store = ModelStore(tmp_path)
    assert not store.blob_path(model.digest).exists()
    assert not (tmp_path / "manifests").exists()
    sent_before = server.blob_bytes_sent.get(model.digest, 0)

    result = pull_from(server, tmp_path, part_size=64 * MiB)

    resumed = [r for r in server.blob_requests() if r.path.endswith(model.digest)][-1]
    assert resumed.range == f"bytes={cut}-{model.size - 1}"
    assert server.blob_bytes_sent[model.digest] - sent_before == model.size - cut
    assert sha256_of(result.model_path) == model.digest
    assert blob_names(tmp_path) == expected_blob_names(published)


def test_cut_connection_is_retried_within_one_pull(server: RegistryServer, published, tmp_path: Path) -> None:
    server.faults.cut_after = 3 * MiB
    server.faults.cuts = 3  # config and small layers are shorter than the cut: only big blobs are hit

    result = pull_from(server, tmp_path, retries=1, part_size=16 * MiB)

    assert sha256_of(result.model_path) == published.layers[MODEL_MEDIA_TYPE].digest
    assert server.total_blob_bytes_sent() == published.total_size  # retries fetched only what was missing


@pytest.mark.parametrize("retries", [2, 1])
def test_transient_errors_are_retried_then_reported(server: RegistryServer, tmp_path: Path, retries: int) -> None:
    server.faults.blob_statuses = [503, 503]
    if retries >= 2:
        result = pull_from(server, tmp_path, retries=retries)
        assert result.model_path.is_file()
    else:
        with pytest.raises(RegistryError, match="HTTP 503.*gave up after 2 attempts"):
            pull_from(server, tmp_path, retries=retries)


# -- errors -------------------------------------------------------------------------------------


def test_corrupted_blob_is_rejected_and_not_kept(server: RegistryServer, published, tmp_path: Path) -> None:
    model = published.layers[MODEL_MEDIA_TYPE]
    server.faults.corrupt = {model.digest}

    with pytest.raises(DigestMismatchError, match=model.digest):
        pull_from(server, tmp_path, part_size=16 * MiB)

    names = blob_names(tmp_path)
    assert not any(model.digest[7:] in name for name in names)  # neither final nor partial
    assert not (tmp_path / "manifests").exists()

    server.faults.corrupt = set()
    result = pull_from(server, tmp_path)
    assert sha256_of(result.model_path) == model.digest


def test_unknown_model_is_a_clear_404(server: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="HTTP 404"):
        pull_from(server, tmp_path, "library/no-such-model:latest")


def test_missing_blob_is_a_clear_404(server: RegistryServer, tmp_path: Path) -> None:
    server.faults.blob_statuses = [404]
    with pytest.raises(ModelNotFoundError, match="HTTP 404"):
        pull_from(server, tmp_path)
    assert not (tmp_path / "manifests").exists()


def test_authentication_required_is_a_clear_error(server: RegistryServer, tmp_path: Path) -> None:
    server.faults.status = 401
    with pytest.raises(RegistryAuthError, match="requires authentication"):
        pull_from(server, tmp_path)


def test_not_enough_disk_space_fails_before_downloading(server: RegistryServer, tmp_path: Path) -> None:
    config = bytes_blob(b"{}")
    huge = {"mediaType": MODEL_MEDIA_TYPE, "digest": "sha256:" + "ab" * 32, "size": 1 << 60}
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config.digest, "size": config.size},
        "layers": [huge],
    }
    server.publish_manifest("library/huge:latest", json.dumps(manifest).encode(), [config])

    with pytest.raises(DiskFullError, match="not enough disk space"):
        pull_from(server, tmp_path, "library/huge:latest")
    assert server.blob_requests() == []


@pytest.mark.parametrize("digest", ["sha256:../../../../escape", "sha256:" + "AB" * 32, "md5:" + "a" * 32, 42])
def test_manifest_with_hostile_digest_is_refused(server: RegistryServer, tmp_path: Path, digest: object) -> None:
    config = bytes_blob(b"{}")
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": MODEL_MEDIA_TYPE, "digest": digest, "size": 10}],
    }
    server.publish_manifest("library/evil:latest", json.dumps(manifest).encode(), [config])

    with pytest.raises(RegistryError, match="unusable manifest"):
        pull_from(server, tmp_path, "library/evil:latest")
    assert server.blob_requests() == []
    assert not (tmp_path / "escape").exists()


def test_bad_registry_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="base URL"):
        pull(NAME, registry="ftp://example.com", models_dir=tmp_path)


def test_registry_errors_are_qvl_errors() -> None:
    for error in (RegistryError, RegistryAuthError, DigestMismatchError, DiskFullError, ModelNotFoundError):
        assert issubclass(error, QvlError)


# -- Hugging Face names and Ollama's single-file layout -----------------------------------------

HF_REPO = "ggml-org/Qwen2.5-VL-3B-Instruct-GGUF"


@pytest.fixture
def hf_registry():
    """A registry that, like Hugging Face's, answers a quantization tag in any case."""
    with RegistryServer(tags_ignore_case=True) as running:
        yield running


@pytest.mark.parametrize("host", ["hf.co", "huggingface.co"])
def test_hugging_face_pair_is_stored_under_hf_co(hf_registry: RegistryServer, fixtures: Path, tmp_path: Path,
                                                 host: str) -> None:
    pair = fixtures / "gguf" / "qwen25vl"
    published = hf_registry.publish_model(f"{HF_REPO}:Q8_0", pair / "qwen25vl-tiny-Q8_0.gguf",
                                          pair / "mmproj-qwen25vl-tiny-F16.gguf")

    result = pull_from(hf_registry, tmp_path, f"{host}/{HF_REPO}:q8_0")  # the tag in another case

    assert str(result.name) == f"hf.co/{HF_REPO}:q8_0"
    manifest_path = tmp_path / "manifests" / "hf.co" / "ggml-org" / "Qwen2.5-VL-3B-Instruct-GGUF" / "q8_0"
    assert manifest_path.read_bytes() == published.manifest
    for spelling in (f"hf.co/{HF_REPO}:Q8_0", f"huggingface.co/{HF_REPO}:q8_0"):
        resolved = resolve_model(spelling, models_dir=tmp_path)
        assert sha256_of(resolved.model_path) == file_digest(pair / "qwen25vl-tiny-Q8_0.gguf")
        assert sha256_of(resolved.projector_path) == file_digest(pair / "mmproj-qwen25vl-tiny-F16.gguf")


def test_hugging_face_default_tag_is_latest(hf_registry: RegistryServer, fixtures: Path, tmp_path: Path) -> None:
    hf_registry.publish_model(f"{HF_REPO}:latest", fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf",
                              fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf")
    result = pull_from(hf_registry, tmp_path, f"hf.co/{HF_REPO}")
    assert (tmp_path / "manifests" / "hf.co" / "ggml-org" / "Qwen2.5-VL-3B-Instruct-GGUF" / "latest").is_file()
    assert resolve_model(f"hf.co/{HF_REPO}", models_dir=tmp_path).model_path == result.model_path


@pytest.fixture(scope="module")
def ollama_single_file(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ollama_qwen25vl(fixtures, tmp_path_factory)


def test_ollama_single_file_model_resolves_to_one_file(server: RegistryServer, ollama_single_file: Path,
                                                       tmp_path: Path) -> None:
    # As Ollama's library serves qwen2.5vl: one model layer holding text and vision, a Go template layer.
    server.publish_model("library/qwen2.5vl:tiny", ollama_single_file, family="qwen25vl")

    pull_from(server, tmp_path, "library/qwen2.5vl:tiny")
    resolved = resolve_model("qwen2.5vl:tiny", models_dir=tmp_path)

    assert resolved.projector_path is None
    assert resolved.chat_template is None  # a Go template is never handed to the model
    assert sha256_of(resolved.model_path) == file_digest(ollama_single_file)
    header = read_gguf_header(resolved.model_path)
    assert header.architecture == "qwen25vl"
    assert any(tensor.name.startswith("v.blk.") for tensor in header.tensors)


@pytest.fixture(scope="module")
def ollama_qwen3vl_file(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ollama_qwen3vl_like(fixtures, tmp_path_factory.mktemp("ollama-qwen3vl") / "model.gguf")


QWEN3_VL_INSTEAD = "hf.co/Qwen/Qwen3-VL-2B-Instruct-GGUF"


def test_ollama_qwen3vl_single_file_is_refused_before_its_large_blobs(server: RegistryServer, ollama_qwen3vl_file: Path,
                                                                     tmp_path: Path) -> None:
    """Ollama's own qwen3-vl: one model layer with text and vision, a config saying family qwen3vl and no
    clip. Only the small config blob is fetched; the error names the model and what to use instead."""
    published = server.publish_model("library/qwen3-vl:tiny", ollama_qwen3vl_file, family="qwen3vl")

    with pytest.raises(ModelFormatError, match=rf"qwen3-vl:tiny is Ollama's single-file qwen3vl.*{QWEN3_VL_INSTEAD}"):
        pull_from(server, tmp_path, "library/qwen3-vl:tiny")

    assert {request.path.rsplit("/", 1)[-1] for request in server.blob_requests()} == {published.config.digest}
    assert not (tmp_path / "manifests").exists()


def test_qwen3vl_with_its_projector_layer_is_pulled(server: RegistryServer, fixtures: Path, tmp_path: Path) -> None:
    """The llama.cpp layout of Qwen3-VL (a model and a projector layer, as hf.co serves it) is not refused."""
    folder = fixtures / "gguf" / "qwen3vl"
    server.publish_model("library/qwen3vl-pair:q8_0", folder / "qwen3vl-tiny-Q8_0.gguf",
                         folder / "mmproj-qwen3vl-tiny-F16.gguf", family="qwen3vl")
    result = pull_from(server, tmp_path, "library/qwen3vl-pair:q8_0")
    assert sha256_of(result.mmproj_path) == file_digest(folder / "mmproj-qwen3vl-tiny-F16.gguf")


def test_loading_an_ollama_qwen3vl_file_is_a_clear_error(ollama_qwen3vl_file: Path) -> None:
    """On disk (pulled by Ollama itself), with or without its vision: a ModelFormatError, not a wrong model."""
    import qvl_local

    for options in ({}, {"mmproj": False}):
        with pytest.raises(ModelFormatError, match=rf"single-file qwen3vl model.*{QWEN3_VL_INSTEAD}"):
            qvl_local.load(ollama_qwen3vl_file, n_ctx=256, **options)


# -- pulling on demand ----------------------------------------------------------------------------


def test_resolve_pulls_a_missing_name_only_when_asked(server: RegistryServer, published, tmp_path: Path) -> None:
    name = f"http://{server.netloc}/{NAME}"  # the local registry speaks plain HTTP
    with pytest.raises(ModelNotPulledError, match="qvl-local pull"):
        resolve_model(name, models_dir=tmp_path)
    assert server.requests == []

    resolved = resolve_model(name, models_dir=tmp_path, pull=True, progress=False)

    assert sha256_of(resolved.model_path) == published.layers[MODEL_MEDIA_TYPE].digest
    assert sha256_of(resolved.projector_path) == published.layers[PROJECTOR_MEDIA_TYPE].digest
    fetched = len(server.requests)
    assert resolve_model(name, models_dir=tmp_path, pull=True) == resolved
    assert len(server.requests) == fetched  # present now: nothing is fetched again


def test_resolve_pulls_again_when_a_blob_is_missing(server: RegistryServer, published, tmp_path: Path) -> None:
    name = f"http://{server.netloc}/{NAME}"
    first = resolve_model(name, models_dir=tmp_path, pull=True, progress=False)
    first.projector_path.unlink()
    with pytest.raises(ModelNotPulledError, match="pull the model again"):
        resolve_model(name, models_dir=tmp_path)

    again = resolve_model(name, models_dir=tmp_path, pull=True, progress=False)

    assert sha256_of(again.projector_path) == published.layers[PROJECTOR_MEDIA_TYPE].digest
    assert server.blob_bytes_sent[published.layers[MODEL_MEDIA_TYPE].digest] == published.layers[MODEL_MEDIA_TYPE].size


# -- load() by name (needs the model runtime) ---------------------------------------------------


def test_load_pulls_a_name_that_is_not_in_the_store(server: RegistryServer, published, tmp_path: Path) -> None:
    import qvl_local

    name = f"http://{server.netloc}/{NAME}"
    with pytest.raises(ModelNotPulledError):
        qvl_local.load(name, models_dir=tmp_path, pull=False, n_ctx=256)
    assert server.requests == []

    model = qvl_local.load(name, models_dir=tmp_path, n_ctx=256)

    assert model.has_vision
    assert sha256_of(model.text_file.path) == published.layers[MODEL_MEDIA_TYPE].digest
    assert sha256_of(model.mmproj_file.path) == published.layers[PROJECTOR_MEDIA_TYPE].digest


@pytest.mark.parametrize("layer_is_jinja", [True, False])
def test_template_layer_reaches_the_model_only_when_jinja(server: RegistryServer, fixtures: Path, tmp_path: Path,
                                                          layer_is_jinja: bool) -> None:
    import qvl_local

    from test_store import OLLAMA_GO_TEMPLATE

    jinja = json.loads((fixtures / "tokenizer" / "qwen2vl" / "chat_template.json").read_text())["chat_template"]
    bare = without_chat_template(fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf", tmp_path / "no-template.gguf")
    server.publish_model("library/bare:q8_0", bare, fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf",
                         template=jinja if layer_is_jinja else OLLAMA_GO_TEMPLATE)
    store_dir = tmp_path / "store"
    pull_from(server, store_dir, "library/bare:q8_0")

    model = qvl_local.load("bare:q8_0", models_dir=store_dir, pull=False, n_ctx=256)

    assert model.text_file.get("tokenizer.chat_template") is None
    if layer_is_jinja:
        assert model.tokenizer.chat_template == jinja
    else:
        assert model.tokenizer.chat_template != OLLAMA_GO_TEMPLATE  # None, or the model's built-in one


def test_load_by_name_after_pull_equals_load_by_path(server: RegistryServer, tmp_path: Path, monkeypatch) -> None:
    import qvl_local

    result = pull_from(server, tmp_path)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]

    by_name = qvl_local.load(str(result.name), n_ctx=256)
    by_path = qvl_local.load(str(result.model_path), mmproj=str(result.mmproj_path), n_ctx=256)

    assert by_name.config == by_path.config
    greedy = {"max_new_tokens": 6, "temperature": 0.0, "seed": 0}
    assert by_name.chat(messages, **greedy) == by_path.chat(messages, **greedy)
