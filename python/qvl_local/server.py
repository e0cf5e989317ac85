"""`qvl-local serve`: an OpenAI-compatible HTTP API over one loaded model (FastAPI + uvicorn).

Endpoints: `POST /v1/chat/completions` (text, `image_url` and `video_url` parts, streaming with
server-sent events), `GET /v1/models`, `GET /v1/models/{id}` and `GET /health`.

The model is not thread-safe, so one worker thread runs the generations one at a time, in arrival
order; at most `max_queue` requests are admitted at once (the running one included) and the others
get 503. The model keeps its KV cache between requests, so a conversation that continues reuses the
cached prefix. Request checking, media downloads and token counting happen before a request waits
for the model, so a bad request fails at once and costs the model nothing.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import ipaddress
import json
import logging
import math
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .chat import render_chat
from .errors import QvlError
from .generation import GenerationConfig
from .model import Model, PreparedPrompt
from .preprocess import MediaError, download

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
API_KEY_ENV = "QVL_API_KEY"
OWNER = "qvl-local"
MAX_STOP_STRINGS = 4  # as the OpenAI API
MAX_TEMPERATURE = 2.0  # as the OpenAI API
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height

logger = logging.getLogger("qvl_local.server")


@dataclass(frozen=True)
class ServerSettings:
    """What the operator chose: the model's public name, access, and the limits on requests."""

    model_id: str
    api_key: str | None = None
    media_dir: Path | None = None  # local files (file:// URLs) are read only under this folder
    max_queue: int = 8  # requests admitted at once, the running one included
    max_body_bytes: int = 64 * 2**20  # a request body, data URIs included
    max_image_bytes: int = 20 * 2**20  # one encoded image (data URI, download or file)
    max_image_pixels: int = 2**26  # width x height of one image before resizing
    max_media: int = 16  # images plus videos in one request
    download_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_body_bytes", "max_image_bytes", "max_image_pixels", "max_media"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.media_dir is not None:
            media_dir = Path(self.media_dir).resolve()
            if not media_dir.is_dir():
                raise QvlError(f"media folder not found: {self.media_dir}")
            object.__setattr__(self, "media_dir", media_dir)


class APIError(Exception):
    """A request that fails, answered with an OpenAI-shaped error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


# ---------------------------------------------------------------------------------------------------
# Starting the server


def serve(model: Model, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, model_id: str | None = None,
          api_key: str | None = None, media_dir: str | Path | None = None, allow_remote: bool = False,
          max_queue: int = 8, log_level: str = "info") -> None:
    """Serve `model` until interrupted. Binding anything but a loopback address needs allow_remote."""
    check_bind_host(host, allow_remote=allow_remote)
    if not api_key and not is_loopback(host):
        logger.warning("serving on %s without an API key: anyone who can reach it can use the model", host)
    settings = ServerSettings(model_id=model_id or default_model_id(model), api_key=api_key or None,
                              media_dir=Path(media_dir) if media_dir is not None else None, max_queue=max_queue)
    uvicorn.run(create_app(model, settings), host=host, port=port, log_level=log_level)


def default_model_id(model: Model) -> str:
    return model.text_file.path.stem


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_bind_host(host: str, *, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(host):
        raise QvlError(f"refusing to listen on {host}, which is reachable from other machines; pass "
                       "--allow-remote (and set an API key) to serve beyond this machine")


# ---------------------------------------------------------------------------------------------------
# The application


def create_app(model: Model, settings: ServerSettings) -> FastAPI:
    """The ASGI application serving `model`; its worker thread runs while the app's lifespan lasts."""
    worker = _ModelWorker(settings.max_queue)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="qvl-local", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(APIError, _api_error_response)
    app.add_exception_handler(StarletteHTTPException, _http_error_response)
    app.add_exception_handler(Exception, _unexpected_error_response)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_id, **worker.state()}

    api = APIRouter(prefix="/v1", dependencies=[Depends(_api_key_check(settings.api_key))])

    card = {"id": settings.model_id, "object": "model", "created": int(model.text_file.path.stat().st_mtime),
            "owned_by": OWNER}

    @api.get("/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [card]}

    @api.get("/models/{model_name:path}")
    async def get_model(model_name: str) -> dict[str, Any]:
        _check_model_name(model_name, settings.model_id, param=None)
        return card

    @api.post("/chat/completions")
    async def chat_completions(request: Request):
        body = _parse_json(await _read_body(request, settings.max_body_bytes))
        chat = _parse_chat_request(body, settings)
        if not worker.admit():
            raise APIError(503, f"the server is busy ({settings.max_queue} requests in progress); retry later",
                           code="queue_full")
        try:
            prepared = await asyncio.to_thread(_prepare_chat, model, settings, chat)
        except (QvlError, ValueError) as error:  # a malformed chat, bad media, a setting out of range
            worker.withdraw()
            raise _api_error_from(error) from None
        except BaseException:
            worker.withdraw()
            raise
        job = _GenerationJob(model, prepared, asyncio.get_running_loop())
        worker.enqueue(job)
        watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
        reply = _Reply(settings.model_id, len(prepared.prompt))
        if chat.stream:
            return await _stream_reply(job, watcher, reply, chat.include_usage)
        try:
            return await _complete_reply(job, reply)
        finally:
            watcher.cancel()

    app.include_router(api)
    return app


def _api_key_check(api_key: str | None):
    expected = api_key.encode() if api_key else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise APIError(401, "missing or incorrect API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    return check


async def _api_error_response(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, APIError)
    return error.response()


async def _http_error_response(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return APIError(error.status_code, str(error.detail), code=codes.get(error.status_code)).response()


async def _unexpected_error_response(_: Request, error: Exception) -> JSONResponse:
    logger.error("request failed", exc_info=error)
    return APIError(500, f"internal error: {type(error).__name__}").response()


# ---------------------------------------------------------------------------------------------------
# Reading and checking a request


@dataclass(frozen=True)
class _MediaRef:
    """An image or video part as the client gave it; resolved to bytes or a path before generation."""

    kind: str  # "image" or "video"
    url: str
    param: str  # where it was, for error messages: messages[i].content[j]


@dataclass(frozen=True)
class _ChatRequest:
    messages: list[dict[str, Any]]  # render_chat's shape, media parts holding _MediaRef values
    max_tokens: int | None
    sampling: dict[str, Any]  # GenerationConfig fields other than max_new_tokens
    stream: bool
    include_usage: bool


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than {limit} bytes", code="request_too_large")


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise APIError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return value


def _parse_chat_request(body: Mapping[str, Any], settings: ServerSettings) -> _ChatRequest:
    if "model" not in body:
        raise APIError(400, "'model' is required", param="model", code="missing_required_parameter")
    _check_model_name(body["model"], settings.model_id, param="model")
    _check_unsupported(body)
    messages, media = _parse_messages(body.get("messages"))
    if len(media) > settings.max_media:
        raise APIError(400, f"{len(media)} images and videos in one request; at most {settings.max_media} are allowed",
                       param="messages", code="too_many_images")
    max_tokens = _optional_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", minimum=1)
    sampling = {
        "temperature": _optional_number(body, "temperature", 0.0, MAX_TEMPERATURE),
        "top_p": _optional_number(body, "top_p", 0.0, 1.0, open_low=True),
        "top_k": _optional_int(body, "top_k", minimum=0),
        "min_p": _optional_number(body, "min_p", 0.0, 1.0),
        "repetition_penalty": _optional_number(body, "repetition_penalty", 0.0, math.inf, open_low=True),
        "seed": _optional_int(body, "seed", minimum=0),
        "stop": _parse_stop(body.get("stop")),
    }
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise APIError(400, "'stream' must be true or false", param="stream")
    return _ChatRequest(messages=messages, max_tokens=max_tokens,
                        sampling={k: v for k, v in sampling.items() if v is not None},
                        stream=stream, include_usage=_include_usage(body.get("stream_options")))


def _check_model_name(name: Any, model_id: str, *, param: str | None) -> None:
    if name != model_id:
        raise APIError(404, f"the model {name!r} does not exist; this server serves {model_id!r}",
                       param=param, code="model_not_found")


def _check_unsupported(body: Mapping[str, Any]) -> None:
    """Refuse the options we cannot honour, rather than answer something else than was asked."""
    if body.get("n") not in (None, 1):
        raise APIError(400, "only n=1 is supported", param="n", code="unsupported_parameter")
    if body.get("logprobs"):
        raise APIError(400, "logprobs are not supported", param="logprobs", code="unsupported_parameter")
    if body.get("tools"):
        raise APIError(400, "tools are not supported", param="tools", code="unsupported_parameter")


def _optional_int(body: Mapping[str, Any], name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise APIError(400, f"'{name}' must be an integer >= {minimum}, got {value!r}", param=name)
    return value


def _optional_number(body: Mapping[str, Any], name: str, low: float, high: float, *,
                     open_low: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    valid = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not valid or value > high or value < low or (open_low and value == low):
        bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise APIError(400, f"'{name}' must be a number in {bounds}, got {value!r}", param=name)
    return float(value)


def _parse_stop(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise APIError(400, "'stop' must be a non-empty string or a list of them", param="stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise APIError(400, f"at most {MAX_STOP_STRINGS} stop strings are allowed", param="stop")
    return tuple(stops)


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise APIError(400, "'stream_options' must be an object like {\"include_usage\": true}",
                       param="stream_options")
    return options.get("include_usage", False)


_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _parse_messages(messages: Any) -> tuple[list[dict[str, Any]], list[_MediaRef]]:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list", param="messages")
    parsed, media = [], []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{where} must be an object", param=where)
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise APIError(400, f"{where} has role {message.get('role')!r}; expected one of {', '.join(_ROLES)}",
                           param=f"{where}.role")
        content = message.get("content")
        if isinstance(content, str):
            parsed.append({"role": role, "content": content})
        elif isinstance(content, list):
            parts = [_parse_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
            media += [part[part["type"]] for part in parts if part["type"] != "text"]
            parsed.append({"role": role, "content": parts})
        else:
            raise APIError(400, f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    return parsed, media


def _parse_part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise APIError(400, f"{where} needs a 'text' string", param=where)
        return {"type": "text", "text": part["text"]}
    if kind in ("image_url", "video_url"):
        value = part.get(kind)
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str) or not url:
            raise APIError(400, f"{where} needs {kind}: {{\"url\": ...}}", param=where)
        media = kind.removesuffix("_url")
        return {"type": media, media: _MediaRef(media, url, where)}
    raise APIError(400, f"{where} has type {kind!r}; expected text, image_url or video_url", param=where)


# ---------------------------------------------------------------------------------------------------
# Media and token counting (on a thread of the event loop's pool, before the request waits in line)


@dataclass(frozen=True)
class _PreparedChat:
    prompt: PreparedPrompt
    config: GenerationConfig


def _prepare_chat(model: Model, settings: ServerSettings, chat: _ChatRequest) -> _PreparedChat:
    rendered = render_chat(chat.messages, template=model.tokenizer.chat_template)
    if (rendered.images or rendered.videos) and not model.has_vision:
        raise APIError(400, "this model was loaded without its vision projector: it takes text only",
                       param="messages", code="vision_unavailable")
    images = [_read_image(ref, settings) for ref in rendered.images]
    videos = [str(_local_media_path(ref, settings)) for ref in rendered.videos]
    try:
        prompt = model.prepare_prompt(rendered.prompt, images, videos)
    except (MediaError, ValueError) as error:  # an undecodable video, an extreme aspect ratio
        raise APIError(400, str(error), param="messages", code="invalid_media") from None
    prompt_tokens = len(prompt)
    max_tokens = chat.max_tokens if chat.max_tokens is not None else model.n_ctx - prompt_tokens
    if max_tokens < 1 or prompt_tokens + max_tokens > model.n_ctx:
        raise APIError(400, f"this model's context is {model.n_ctx} tokens; the messages take {prompt_tokens} "
                       f"and max_tokens asks for {max_tokens} more", param="messages",
                       code="context_length_exceeded")
    return _PreparedChat(prompt, GenerationConfig(max_new_tokens=max_tokens, **chat.sampling))


def _read_image(ref: _MediaRef, settings: ServerSettings) -> bytes:
    """The encoded image, checked against the byte and pixel limits."""
    limit = settings.max_image_bytes
    if ref.url.startswith("data:"):
        data = _decode_data_uri(ref, limit)
    elif ref.url.startswith(("http://", "https://")):
        try:
            data = download(ref.url, max_bytes=limit, timeout=settings.download_timeout_s)
        except MediaError as error:
            raise APIError(400, str(error), param=ref.param, code="invalid_image_url") from None
    elif ref.url.startswith("file:"):
        data = _read_local_image(_local_media_path(ref, settings), ref, limit)
    else:
        raise APIError(400, f"{ref.param}: unsupported image URL {_short(ref.url)}; use a data:image/...;base64 URI, "
                       "an http(s) URL or a file:// URL", param=ref.param, code="invalid_image_url")
    width, height = _image_size(data, ref)
    if width * height > settings.max_image_pixels:
        raise APIError(400, f"{ref.param}: the image is {width}x{height}, more than the {settings.max_image_pixels} "
                       "pixels allowed", param=ref.param, code="image_too_large")
    return data


def _decode_data_uri(ref: _MediaRef, limit: int) -> bytes:
    header, comma, payload = ref.url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise APIError(400, f"{ref.param}: expected a data:image/...;base64, URI", param=ref.param,
                       code="invalid_image_url")
    if len(payload) * 3 // 4 > limit + 2:  # base64 inflates by 4/3: refuse before decoding
        raise _image_too_many_bytes(ref, limit)
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as error:
        raise APIError(400, f"{ref.param}: invalid base64 in the data URI ({error})", param=ref.param,
                       code="invalid_image_url") from None
    if len(data) > limit:
        raise _image_too_many_bytes(ref, limit)
    return data


def _read_local_image(path: Path, ref: _MediaRef, limit: int) -> bytes:
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _image_too_many_bytes(ref, limit)
    return data


def _image_too_many_bytes(ref: _MediaRef, limit: int) -> APIError:
    return APIError(400, f"{ref.param}: the image is larger than {limit} bytes", param=ref.param,
                    code="image_too_large")


def _image_size(data: bytes, ref: _MediaRef) -> tuple[int, int]:
    """(width, height) as the model will see it (EXIF rotation applied), from the header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel limit is ours
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                orientation = image.getexif().get(EXIF_ORIENTATION)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise APIError(400, f"{ref.param}: not an image this server can read ({error})", param=ref.param,
                       code="invalid_image") from None
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def _local_media_path(ref: _MediaRef, settings: ServerSettings) -> Path:
    """The file a file:// URL names, which must lie inside the media folder once links and `..` resolve."""
    if settings.media_dir is None:
        raise APIError(400, f"{ref.param}: this server reads no local files (start it with --media-dir to allow "
                       "file:// URLs under one folder)", param=ref.param, code="local_files_disabled")
    parsed = urllib.parse.urlparse(ref.url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise APIError(400, f"{ref.param}: expected a file:// URL, got {_short(ref.url)}", param=ref.param,
                       code=f"invalid_{ref.kind}_url")
    path = Path(urllib.request.url2pathname(parsed.path)).resolve()
    if not path.is_relative_to(settings.media_dir) or not path.is_file():
        raise APIError(400, f"{ref.param}: no such file in the media folder: {_short(ref.url)}", param=ref.param,
                       code="file_not_found")
    return path


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ---------------------------------------------------------------------------------------------------
# The worker: one generation at a time


@dataclass(frozen=True)
class _Started:
    """The prompt was accepted by the model; text follows."""


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Finished:
    finish_reason: str  # "stop", "length", or "cancelled" when its client left
    completion_tokens: int


@dataclass(frozen=True)
class _Failed:
    error: APIError


class _GenerationJob:
    """One request's generation: run on the worker thread, its events read on the event loop."""

    def __init__(self, model: Model, prepared: _PreparedChat, loop: asyncio.AbstractEventLoop):
        self._model = model
        self._prepared = prepared
        self._loop = loop
        self._events: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop after the current token (or skip the job if it has not started)."""
        self._cancelled.set()

    async def next_event(self) -> _Started | _Text | _Finished | _Failed:
        return await self._events.get()

    def run(self) -> None:
        """On the worker thread. Always ends with a _Finished or _Failed event."""
        if self._cancelled.is_set():
            self._post(_Finished("cancelled", 0))
            return
        try:
            self._post(self._generate())
        except Exception as error:  # the worker must outlive any one request
            self._post(_Failed(_api_error_from(error)))

    def _generate(self) -> _Finished:
        prepared = self._prepared
        tokens = self._model.generate(prepared.prompt, config=prepared.config, stream=True)
        self._post(_Started())
        completion_tokens = 0
        try:
            for text, token in tokens:
                completion_tokens += token >= 0  # -1 marks held-back text, not a new token
                if text:
                    self._post(_Text(text))
                if self._cancelled.is_set():
                    return _Finished("cancelled", completion_tokens)
        finally:
            tokens.close()
        return _Finished(self._model.last_finish_reason, completion_tokens)

    def _post(self, event: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass


def _api_error_from(error: Exception) -> APIError:
    if isinstance(error, APIError):
        return error
    if isinstance(error, (QvlError, ValueError)):  # bad media, a malformed chat, a setting out of range
        return APIError(400, str(error), code="invalid_request")
    logger.error("generation failed", exc_info=error)
    return APIError(500, f"generation failed: {type(error).__name__}")


class _ModelWorker:
    """Runs jobs one at a time on its own thread; admits at most `capacity` requests at once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._jobs: queue.SimpleQueue[_GenerationJob | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._current: _GenerationJob | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_jobs, name="qvl-model-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Cancel the running and waiting jobs, then end the thread."""
        with self._lock:
            self._stopping = True
            if self._current is not None:
                self._current.cancel()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join()

    def admit(self) -> bool:
        """Reserve a place for a request; False when `capacity` requests are already in."""
        with self._lock:
            if self._admitted >= self.capacity:
                return False
            self._admitted += 1
            return True

    def withdraw(self) -> None:
        """Give back a place reserved by admit() for a request that will not be enqueued."""
        with self._lock:
            self._admitted -= 1

    def enqueue(self, job: _GenerationJob) -> None:
        self._jobs.put(job)

    def state(self) -> dict[str, int]:
        with self._lock:
            running = int(self._current is not None)
            return {"running": running, "waiting": self._admitted - running, "capacity": self.capacity}

    def _run_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._current = job
                if self._stopping:
                    job.cancel()
            try:
                job.run()
            finally:
                with self._lock:
                    self._current = None
                    self._admitted -= 1


async def _cancel_on_disconnect(request: Request, job: _GenerationJob) -> None:
    """Cancel `job` when its client goes away (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel()


# ---------------------------------------------------------------------------------------------------
# Replies


@dataclass
class _Reply:
    model_id: str
    prompt_tokens: int
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def completion(self, text: str, finished: _Finished) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finished.finish_reason, "logprobs": None}],
            "usage": self.usage(finished.completion_tokens),
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                         "logprobs": None}]})

    def usage_chunk(self, completion_tokens: int) -> str:
        return self._event({"choices": [], "usage": self.usage(completion_tokens)})

    def _event(self, payload: dict[str, Any]) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model_id, **payload}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def _first_event(job: _GenerationJob) -> _Started:
    event = await job.next_event()
    if isinstance(event, _Failed):
        raise event.error
    if isinstance(event, _Finished):  # cancelled while waiting: its client is gone, nobody reads this
        raise APIError(499, "the client closed the request", code="client_closed_request")
    return event


async def _complete_reply(job: _GenerationJob, reply: _Reply) -> JSONResponse:
    await _first_event(job)
    pieces = []
    while not isinstance(event := await job.next_event(), (_Finished, _Failed)):
        pieces.append(event.text)
    if isinstance(event, _Failed):
        raise event.error
    return JSONResponse(reply.completion("".join(pieces), event))


async def _stream_reply(job: _GenerationJob, watcher: asyncio.Task, reply: _Reply,
                        include_usage: bool) -> StreamingResponse:
    try:
        await _first_event(job)  # errors found before any text still get their HTTP status
    except BaseException:
        watcher.cancel()
        raise

    async def events() -> AsyncIterator[str]:
        try:
            yield reply.chunk({"role": "assistant", "content": ""})
            while not isinstance(event := await job.next_event(), (_Finished, _Failed)):
                yield reply.chunk({"content": event.text})
            if isinstance(event, _Failed):
                yield f"data: {json.dumps(event.error.body())}\n\n"
                return
            yield reply.chunk({}, event.finish_reason)
            if include_usage:
                yield reply.usage_chunk(event.completion_tokens)
            yield "data: [DONE]\n\n"
        finally:  # the stream ended, or the server stopped it because the client left
            job.cancel()
            watcher.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
