"""`qvl-local serve` for real: uvicorn on 127.0.0.1 driven by the official `openai` client.

Answers are compared with `Model.chat` on a separate model (random weights: gibberish, compared exactly).
"""
from __future__ import annotations

import base64
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from PIL import Image

import qvl_local
from qvl_local.chat import render_chat
from qvl_local.cli import main
from qvl_local.errors import QvlError
from qvl_local.server import ServerSettings, check_bind_host, create_app
from conftest import RecordingDecoder, subprocess_env, write_lossless_video

MODEL_ID = "tiny"
N_CTX = 4096
MAX_TOKENS = 8
IMAGE_PIXEL_LIMIT = 30_000  # img_97x203 (19691 px) fits, a 200x200 image does not
IMAGE_BYTE_LIMIT = 50_000  # img_97x203.png (38932 bytes) fits, img_300x120.png (72012 bytes) does not
BODY_LIMIT = 200_000
MEDIA_LIMIT = 2


# -- servers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_files(fixtures: Path) -> tuple[Path, Path]:
    gguf = fixtures / "gguf"
    return gguf / "qwen2vl-tiny-Q8_0.gguf", gguf / "mmproj-qwen2vl-tiny-F16.gguf"


def load_model(model_files: tuple[Path, Path], n_ctx: int = N_CTX) -> qvl_local.Model:
    text, mmproj = model_files
    return qvl_local.load(text, mmproj=mmproj, n_ctx=n_ctx)


class RunningServer:
    def __init__(self, url: str, model: qvl_local.Model):
        self.url = url
        self.model = model

    def client(self, api_key: str = "unused", **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=60, **options)

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health").json()


@contextmanager
def running_server(model_files: tuple[Path, Path], n_ctx: int = N_CTX, **settings: Any) -> Iterator[RunningServer]:
    """create_app + uvicorn on an ephemeral loopback port, in a background thread."""
    model = load_model(model_files, n_ctx)
    app = create_app(model, ServerSettings(model_id=MODEL_ID, **settings))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield RunningServer(f"http://127.0.0.1:{listener.getsockname()[1]}", model)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.fixture(scope="module")
def media_dir(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    for name in ("img_97x203.png", "img_300x120.png"):
        (folder / name).write_bytes((fixtures / "media" / name).read_bytes())
    Image.new("RGB", (200, 200), (10, 200, 30)).save(folder / "many_pixels.png")
    (folder / "page.html").write_text("<html><body>not an image</body></html>")
    frames = [np.asarray(Image.open(fixtures / "media" / f"video_84x112_f{i}.png").convert("RGB")) for i in range(4)]
    write_lossless_video(folder / "clip.mkv", frames, fps=2)
    outside = tmp_path_factory.mktemp("outside")
    write_lossless_video(outside / "secret.mkv", frames, fps=2)
    (folder / "link.mkv").symlink_to(outside / "secret.mkv")
    return folder


@pytest.fixture(scope="module")
def file_server(media_dir: Path) -> Iterator[str]:
    """Plain HTTP on loopback serving the media folder, for http:// image URLs."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(media_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(model_files: tuple[Path, Path], media_dir: Path) -> Iterator[RunningServer]:
    with running_server(model_files, media_dir=media_dir, max_image_pixels=IMAGE_PIXEL_LIMIT,
                        max_image_bytes=IMAGE_BYTE_LIMIT, max_body_bytes=BODY_LIMIT,
                        max_media=MEDIA_LIMIT) as running:
        yield running


@pytest.fixture(scope="module")
def reference(model_files: tuple[Path, Path]) -> qvl_local.Model:
    """A model of its own, to compute the answers the server must give."""
    return load_model(model_files)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return server.client()


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def image_message(url: str, text: str = "What is in this picture?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": text}]}]


def text_message(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def expected_result(reference: qvl_local.Model, messages: list[dict[str, Any]]) -> qvl_local.GenerationResult:
    """What Model.chat computes, with its token counts: the same rendering, then generate."""
    rendered = render_chat(messages, template=reference.tokenizer.chat_template)
    return reference.generate(rendered.prompt, images=rendered.images, videos=rendered.videos,
                              max_new_tokens=MAX_TOKENS)


def ask(client: openai.OpenAI, messages: list[dict[str, Any]], **options: Any):
    options.setdefault("max_tokens", MAX_TOKENS)
    return client.chat.completions.create(model=MODEL_ID, messages=messages, **options)


# -- answers ------------------------------------------------------------------------------------------


def test_models_and_health(client: openai.OpenAI, server: RunningServer) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    assert client.models.retrieve(MODEL_ID).owned_by == "qvl-local"
    assert server.health() == {"status": "ok", "model": MODEL_ID, "running": 0, "waiting": 0, "capacity": 8}


def test_text_chat_matches_model_chat(client: openai.OpenAI, reference: qvl_local.Model) -> None:
    messages = text_message("Tell me about the sea.")
    reply = ask(client, messages)
    expected = expected_result(reference, messages)
    assert reply.choices[0].message.content == expected.text == reference.chat(messages, max_new_tokens=MAX_TOKENS)
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == expected.finish_reason == "length"
    assert reply.model == MODEL_ID and reply.object == "chat.completion"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (expected.prompt_tokens, MAX_TOKENS)
    assert reply.usage.total_tokens == expected.prompt_tokens + MAX_TOKENS


def test_image_chat_matches_model_chat(client: openai.OpenAI, reference: qvl_local.Model, media_dir: Path) -> None:
    messages = image_message(data_uri(media_dir / "img_97x203.png"))
    reply = ask(client, messages)
    expected = expected_result(reference, messages)
    assert reply.choices[0].message.content == expected.text == reference.chat(messages, max_new_tokens=MAX_TOKENS)
    assert reply.usage.prompt_tokens == expected.prompt_tokens  # the image's vision tokens counted exactly
    assert reply.usage.completion_tokens == len(expected.token_ids)


def test_image_over_http_and_file_url_give_the_same_answer(client: openai.OpenAI, media_dir: Path,
                                                           file_server: str) -> None:
    from_data = ask(client, image_message(data_uri(media_dir / "img_97x203.png")))
    from_http = ask(client, image_message(f"{file_server}/img_97x203.png"))
    from_file = ask(client, image_message((media_dir / "img_97x203.png").as_uri()))
    assert from_http.choices[0].message.content == from_data.choices[0].message.content
    assert from_file.choices[0].message.content == from_data.choices[0].message.content


def test_video_in_media_dir_matches_model_chat(client: openai.OpenAI, reference: qvl_local.Model,
                                               media_dir: Path) -> None:
    video = media_dir / "clip.mkv"
    messages = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": video.as_uri()}},
                                             {"type": "text", "text": "What happens?"}]}]
    reply = ask(client, messages)
    model_messages = [{"role": "user", "content": [{"type": "video", "video": str(video)},
                                                   {"type": "text", "text": "What happens?"}]}]
    expected = expected_result(reference, model_messages)
    assert reply.choices[0].message.content == expected.text
    assert reply.usage.prompt_tokens == expected.prompt_tokens


def test_streaming_deltas_add_up_to_the_answer(client: openai.OpenAI, media_dir: Path) -> None:
    messages = image_message(data_uri(media_dir / "img_97x203.png"), "Describe it.")
    whole = ask(client, messages)
    chunks = list(ask(client, messages, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert len({c.id for c in chunks}) == 1


def test_raw_event_stream_format(server: RunningServer) -> None:
    body = {"model": MODEL_ID, "messages": text_message("Hi"), "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)


def test_stop_strings_cut_the_answer(client: openai.OpenAI) -> None:
    messages = text_message("Count to ten.")
    full = ask(client, messages).choices[0].message.content
    stop = full[len(full) // 2: len(full) // 2 + 2]
    expected = full[: full.index(stop)]
    reply = ask(client, messages, stop=[stop, "never appears"])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    streamed = ask(client, messages, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected


def test_sampling_with_a_seed_repeats(client: openai.OpenAI) -> None:
    messages = text_message("Say something.")
    first = ask(client, messages, temperature=1.0, top_p=0.9, seed=7)
    again = ask(client, messages, temperature=1.0, top_p=0.9, seed=7)
    assert first.choices[0].message.content == again.choices[0].message.content


def test_conversation_reuses_the_cached_prefix(server: RunningServer, client: openai.OpenAI,
                                               reference: qvl_local.Model, monkeypatch) -> None:
    first_turn = text_message(" ".join(f"word{i}" for i in range(450)))  # about 1800 tokens
    ask(client, text_message("Something else, to start from another prefix."))
    recorder = RecordingDecoder(server.model._decoder)
    monkeypatch.setattr(server.model, "_decoder", recorder)
    answer = ask(client, first_turn, max_tokens=1).choices[0].message.content
    fresh_prefill = recorder.forward_sizes[0]
    second_turn = [*first_turn, {"role": "assistant", "content": answer}, {"role": "user", "content": "More?"}]
    recorder.forward_sizes.clear()
    reply = ask(client, second_turn, max_tokens=1).choices[0].message.content
    assert reply == reference.chat(second_turn, max_new_tokens=1)
    assert fresh_prefill > 1500
    assert recorder.forward_sizes[0] < 30, recorder.forward_sizes  # only the new turn's tokens ran


# -- errors -------------------------------------------------------------------------------------------


def post_raw(server: RunningServer, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", content=content,
                      headers={"content-type": "application/json", **(headers or {})})


def assert_openai_error(error: dict[str, Any], code: str | None, param: str | None = None) -> None:
    assert set(error) == {"error"}
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["message"] and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["code"] == code
    if param is not None:
        assert error["error"]["param"] == param


@pytest.mark.parametrize("content, code", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b"[1, 2]", "invalid_json"),
])
def test_malformed_json_is_400(server: RunningServer, content: bytes, code: str) -> None:
    response = post_raw(server, content)
    assert response.status_code == 400
    assert_openai_error(response.json(), code)


def test_body_over_the_limit_is_413(server: RunningServer) -> None:
    body = json.dumps({"model": MODEL_ID, "messages": text_message("x" * BODY_LIMIT)}).encode()
    response = post_raw(server, body)
    assert response.status_code == 413
    assert_openai_error(response.json(), "request_too_large")


def test_body_over_the_limit_without_content_length_is_413(server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(BODY_LIMIT // 10_000 + 1):
            yield b"x" * 10_000
        yield b'"}]}'

    response = httpx.post(f"{server.url}/v1/chat/completions", content=chunks())  # chunked encoding
    assert response.status_code == 413


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL_ID}, "messages"),
    ({"model": MODEL_ID, "messages": []}, "messages"),
    ({"model": MODEL_ID, "messages": ["hello"]}, "messages[0]"),
    ({"model": MODEL_ID, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL_ID, "messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0]"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0]"),
    ({"model": MODEL_ID, "messages": text_message("x"), "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL_ID, "messages": text_message("x"), "max_tokens": "8"}, "max_tokens"),
    ({"model": MODEL_ID, "messages": text_message("x"), "temperature": 2.5}, "temperature"),
    ({"model": MODEL_ID, "messages": text_message("x"), "top_p": 0}, "top_p"),
    ({"model": MODEL_ID, "messages": text_message("x"), "seed": -1}, "seed"),
    ({"model": MODEL_ID, "messages": text_message("x"), "stop": ["a", ""]}, "stop"),
    ({"model": MODEL_ID, "messages": text_message("x"), "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": MODEL_ID, "messages": text_message("x"), "stream": "yes"}, "stream"),
    ({"model": MODEL_ID, "messages": text_message("x"), "n": 2}, "n"),
    ({"messages": text_message("x")}, "model"),
])
def test_malformed_requests_are_400(server: RunningServer, body: dict[str, Any], param: str) -> None:
    response = post_raw(server, json.dumps(body).encode())
    assert response.status_code == 400, response.text
    error = response.json()
    assert_openai_error(error, error["error"]["code"], param)


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=text_message("Hi"), max_tokens=2)
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_prompt_plus_max_tokens_over_the_context_is_400(client: openai.OpenAI) -> None:
    short = ask(client, text_message("Hi"))
    prompt_tokens = short.usage.prompt_tokens
    # Exactly the context is allowed (a stop string from the known answer ends it after a token or two).
    fits = ask(client, text_message("Hi"), max_tokens=N_CTX - prompt_tokens, stop=short.choices[0].message.content[1:3])
    assert fits.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, text_message("Hi"), max_tokens=N_CTX - prompt_tokens + 1)
    assert raised.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, text_message("word " * N_CTX))
    assert raised.value.code == "context_length_exceeded"


def image_error(client: openai.OpenAI, url: str) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, image_message(url))
    assert raised.value.body["param"] == "messages[0].content[0]"
    return raised.value


def test_image_limits(client: openai.OpenAI, media_dir: Path) -> None:
    assert image_error(client, data_uri(media_dir / "img_300x120.png")).code == "image_too_large"  # bytes
    assert image_error(client, data_uri(media_dir / "many_pixels.png")).code == "image_too_large"  # pixels
    three = [{"type": "image_url", "image_url": {"url": data_uri(media_dir / "img_97x203.png")}}] * (MEDIA_LIMIT + 1)
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, [{"role": "user", "content": three}])
    assert raised.value.code == "too_many_images"


@pytest.mark.parametrize("url, code", [
    ("data:image/png;base64," + base64.b64encode(b"plain text, not a picture").decode(), "invalid_image"),
    ("data:image/png;base64,@@@", "invalid_image_url"),
    ("data:text/plain;base64,aGk=", "invalid_image_url"),
    ("/etc/hostname", "invalid_image_url"),
    ("ftp://example.com/a.png", "invalid_image_url"),
])
def test_bad_image_urls_are_400(client: openai.OpenAI, url: str, code: str) -> None:
    assert image_error(client, url).code == code


def test_unreachable_and_non_image_http_urls_are_400(client: openai.OpenAI, file_server: str) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    assert image_error(client, f"http://127.0.0.1:{closed_port}/a.png").code == "invalid_image_url"
    assert image_error(client, f"{file_server}/missing.png").code == "invalid_image_url"
    assert image_error(client, f"{file_server}/page.html").code == "invalid_image"


def video_error(client: openai.OpenAI, url: str) -> openai.BadRequestError:
    message = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}]
    with pytest.raises(openai.BadRequestError) as raised:
        ask(client, message)
    assert raised.value.body["param"] == "messages[0].content[0]"
    return raised.value


def test_nothing_outside_the_media_dir_is_read(client: openai.OpenAI, media_dir: Path) -> None:
    outside = (media_dir / "link.mkv").resolve()
    assert outside.is_file() and media_dir not in outside.parents
    for url in (outside.as_uri(), f"file://{media_dir}/../{outside.parent.name}/secret.mkv",
                (media_dir / "link.mkv").as_uri(), "file:///etc/hostname", (media_dir / "absent.mkv").as_uri()):
        assert video_error(client, url).code == "file_not_found", url
    assert video_error(client, "https://example.com/clip.mp4").code == "invalid_video_url"
    assert image_error(client, (media_dir / "link.mkv").as_uri()).code == "file_not_found"


def test_without_a_media_dir_no_local_file_is_read(model_files: tuple[Path, Path], media_dir: Path) -> None:
    with running_server(model_files) as running:
        client = running.client()
        assert video_error(client, (media_dir / "clip.mkv").as_uri()).code == "local_files_disabled"
        assert image_error(client, (media_dir / "img_97x203.png").as_uri()).code == "local_files_disabled"


def test_unknown_routes_use_the_error_shape(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/v1/nothing")
    assert response.status_code == 404
    assert_openai_error(response.json(), "not_found")
    response = httpx.get(f"{server.url}/v1/chat/completions")
    assert response.status_code == 405
    assert_openai_error(response.json(), "method_not_allowed")


# -- access ---------------------------------------------------------------------------------------------


def test_api_key(model_files: tuple[Path, Path]) -> None:
    with running_server(model_files, api_key="s3cret") as running:
        for wrong in ("wrong", "s3cret2", "s3cre"):
            with pytest.raises(openai.AuthenticationError) as raised:
                running.client(api_key=wrong).models.list()
            assert raised.value.code == "invalid_api_key" and raised.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            ask(running.client(api_key="wrong"), text_message("Hi"))
        assert httpx.post(f"{running.url}/v1/chat/completions", json={}).status_code == 401  # no header
        assert httpx.get(f"{running.url}/v1/models", headers={"authorization": "s3cret"}).status_code == 401
        assert ask(running.client(api_key="s3cret"), text_message("Hi")).choices[0].message.content
        assert running.health()["status"] == "ok"  # health checks need no key


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_are_allowed(host: str) -> None:
    check_bind_host(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "2001:db8::1"])
def test_other_hosts_need_allow_remote(host: str) -> None:
    with pytest.raises(QvlError, match="--allow-remote"):
        check_bind_host(host, allow_remote=False)
    check_bind_host(host, allow_remote=True)


def test_cli_refuses_a_remote_host_before_loading(capsys) -> None:
    assert main(["serve", "/nonexistent/model.gguf", "--host", "0.0.0.0"]) == 1
    assert "--allow-remote" in capsys.readouterr().err


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@contextmanager
def served_by_cli(model_files: tuple[Path, Path], *options: str, **env: str) -> Iterator[str]:
    """`python -m qvl_local serve` in a process of its own (its GIL is not the test's); yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "qvl_local", "serve", str(model_files[0]), "--mmproj", str(model_files[1]),
               "--port", str(port), *options]
    process = subprocess.Popen(command, env=subprocess_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


def test_cli_serve_end_to_end(model_files: tuple[Path, Path]) -> None:
    with served_by_cli(model_files, "--ctx-size", "512", QVL_API_KEY="from-env") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="from-env", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["qwen2vl-tiny-Q8_0"]
        reply = client.chat.completions.create(model="qwen2vl-tiny-Q8_0", messages=text_message("Hi"), max_tokens=2)
        assert reply.usage.completion_tokens <= 2
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="other", max_retries=0).models.list()


# -- one at a time ----------------------------------------------------------------------------------------


def test_concurrent_burst_gives_the_sequential_answers(model_files: tuple[Path, Path],
                                                       reference: qvl_local.Model, media_dir: Path) -> None:
    requests = [text_message(f"Question number {i}?") for i in range(5)]
    requests.append(image_message(data_uri(media_dir / "img_97x203.png"), "And this?"))
    expected = [reference.chat(messages, max_new_tokens=MAX_TOKENS) for messages in requests]
    with running_server(model_files, max_queue=8) as running:
        client = running.client()
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            replies = list(pool.map(lambda messages: ask(client, messages), requests))
        assert [r.choices[0].message.content for r in replies] == expected
        assert running.health()["waiting"] == 0


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_full_queue_is_503_and_a_disconnect_stops_generation(model_files: tuple[Path, Path],
                                                             reference: qvl_local.Model) -> None:
    queued = [text_message("First in line?"), text_message("Second in line?")]
    expected = [reference.chat(messages, max_new_tokens=MAX_TOKENS) for messages in queued]
    long_context = 16384
    with running_server(model_files, n_ctx=long_context, max_queue=1 + len(queued)) as running:
        client = running.client()
        # A generation to the end of a long context: many minutes, unless its client leaving stops it.
        long_body = {"model": MODEL_ID, "messages": text_message("hi"), "stream": True,
                     "max_tokens": long_context - 30}
        with httpx.Client(timeout=60) as http, \
                http.stream("POST", f"{running.url}/v1/chat/completions", json=long_body) as long_stream:
            assert long_stream.status_code == 200
            lines = long_stream.iter_lines()  # kept: dropping a partly read iterator closes the response
            next(lines)  # it runs: the role chunk came
            with ThreadPoolExecutor(max_workers=len(queued)) as pool:
                waiting = [pool.submit(ask, client, messages) for messages in queued]
                wait_for(lambda: running.health()["waiting"] == len(queued), 10, "the queue to fill")
                with pytest.raises(openai.APIStatusError) as raised:
                    ask(client, text_message("One too many."))
                assert raised.value.status_code == 503 and raised.value.body["code"] == "queue_full"
                assert running.health()["running"] == 1
                closed_at = time.monotonic()
                long_stream.close()  # the client goes away mid-stream
                answers = [future.result(timeout=30).choices[0].message.content for future in waiting]
                # Without cancellation the queued answers would wait out thousands of tokens (tens of seconds).
                assert time.monotonic() - closed_at < 15
        assert answers == expected
        wait_for(lambda: running.health() == {"status": "ok", "model": MODEL_ID, "running": 0, "waiting": 0,
                                              "capacity": 3}, 10, "the worker to be idle")


# -- hostile sizes (issue 16 item 1) ---------------------------------------------------------------------


def post_in_background(url: str, body: bytes) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["response"] = httpx.post(url, content=body, headers={"content-type": "application/json"},
                                             timeout=60)
        except httpx.HTTPError as error:
            outcome["error"] = error

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, outcome


def test_huge_prompts_are_refused_while_health_answers(model_files: tuple[Path, Path]) -> None:
    """With the default limits, an 8 MB and a 60 MB prompt (far over n_ctx) are each refused with a 4xx
    within 30 s, and /health answers within 5 s all the while. The server runs in a process of its
    own: a server thread holding the GIL would stall this test's own requests too."""
    with served_by_cli(model_files) as url:
        for megabytes in (8, 60):
            body = json.dumps({"model": "qwen2vl-tiny-Q8_0", "messages": text_message("word " * (megabytes * 2**20 // 5))})
            thread, outcome = post_in_background(f"{url}/v1/chat/completions", body.encode())
            started = time.monotonic()
            while thread.is_alive():
                assert time.monotonic() - started < 30, f"the {megabytes} MB prompt was not answered within 30 s"
                assert httpx.get(f"{url}/health", timeout=5).status_code == 200
                time.sleep(0.05)
            assert "error" not in outcome, outcome
            response = outcome["response"]
            assert 400 <= response.status_code < 500, response.text
            assert response.json()["error"]["code"] in ("context_length_exceeded", "request_too_large"), response.text


def test_deeply_nested_json_is_400(server: RunningServer) -> None:
    response = post_raw(server, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert_openai_error(response.json(), "invalid_json")


# -- messages and data URIs (issue 16 item 8) -----------------------------------------------------------


def test_a_prompt_over_the_context_gets_no_negative_count(client: openai.OpenAI) -> None:
    """Without max_tokens the room left was reported as a negative max_tokens."""
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL_ID, messages=text_message("word " * N_CTX))
    assert raised.value.code == "context_length_exceeded"
    message = raised.value.body["message"]
    assert "leaves no room for an answer" in message and not re.search(r"-\d", message), message


@pytest.mark.parametrize("url", [
    "data:image/png;base64," + base64.b64encode(b"plain text, not a picture").decode(),
    "{file_server}/page.html",
])
def test_a_non_image_is_named_without_python_internals(client: openai.OpenAI, file_server: str, url: str) -> None:
    error = image_error(client, url.format(file_server=file_server))
    assert error.code == "invalid_image"
    message = error.body["message"]
    assert "object at 0x" not in message and "BytesIO" not in message, message
    assert "messages[0].content[0]: cannot decode image <" in message and "bytes>" in message, message


def test_a_video_data_uri_is_decoded_from_memory(model_files: tuple[Path, Path], reference: qvl_local.Model,
                                                 media_dir: Path) -> None:
    """A base64 video needs no media folder: it was refused as "this server reads no local files"."""
    video = media_dir / "clip.mkv"
    uri = "data:video/x-matroska;base64," + base64.b64encode(video.read_bytes()).decode()
    messages = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": uri}},
                                             {"type": "text", "text": "What happens?"}]}]
    with running_server(model_files) as running:
        reply = ask(running.client(), messages)
        assert video_error(running.client(), "data:video/mp4;base64,@@@").code == "invalid_video_url"
        assert video_error(running.client(), "https://example.com/clip.mp4").code == "invalid_video_url"
    expected = expected_result(reference, [{"role": "user", "content": [{"type": "video", "video": str(video)},
                                                                        {"type": "text", "text": "What happens?"}]}])
    assert reply.choices[0].message.content == expected.text
    assert reply.usage.prompt_tokens == expected.prompt_tokens
