"""The ASGI application and `serve`: routes, access, and the path of a chat completion request.

A request is checked on the event loop; its media are read, and its prompt rendered and tokenized,
on the loop's thread pool (`asyncio.to_thread`). Then it waits for the model's worker thread, and
its reply is written from the job's events.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..chat import render_chat
from ..errors import QvlError
from ..generation import GenerationConfig
from ..model import Model
from .chat_request import ChatRequest, check_model_name, parse_chat_request, parse_json, read_body
from .errors import APIError, api_error_from
from .media import read_image, read_video
from .replies import Reply, complete_reply, stream_reply
from .settings import ServerSettings
from .worker import GenerationJob, ModelWorker, PreparedChat, cancel_on_disconnect

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
OWNER = "qvl-local"

logger = logging.getLogger("qvl_local.server")


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


def create_app(model: Model, settings: ServerSettings) -> FastAPI:
    """The ASGI application serving `model`; its worker thread runs while the app's lifespan lasts."""
    worker = ModelWorker(settings.max_queue)

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
        check_model_name(model_name, settings.model_id, param=None)
        return card

    @api.post("/chat/completions")
    async def chat_completions(request: Request):
        chat = parse_chat_request(parse_json(await read_body(request, settings.max_body_bytes)), settings)
        if not worker.admit():
            raise APIError(503, f"the server is busy ({settings.max_queue} requests in progress); retry later",
                           code="queue_full")
        try:
            prepared = await asyncio.to_thread(prepare_chat, model, settings, chat)
        except (QvlError, ValueError) as error:  # a malformed chat, bad media, a setting out of range
            worker.withdraw()
            raise api_error_from(error) from None
        except BaseException:
            worker.withdraw()
            raise
        job = GenerationJob(model, prepared, asyncio.get_running_loop())
        worker.enqueue(job)
        watcher = asyncio.create_task(cancel_on_disconnect(request, job))
        reply = Reply(settings.model_id, len(prepared.prompt))
        if chat.stream:
            return await stream_reply(job, watcher, reply, chat.include_usage)
        try:
            return await complete_reply(job, reply)
        finally:
            watcher.cancel()

    app.include_router(api)
    return app


def prepare_chat(model: Model, settings: ServerSettings, chat: ChatRequest) -> PreparedChat:
    """The request's prompt rendered and tokenized, its media read and preprocessed, checked against
    the context (no model compute: it runs beside the generation of another request)."""
    rendered = render_chat(chat.messages, template=model.tokenizer.chat_template)
    if (rendered.images or rendered.videos) and not model.has_vision:
        raise APIError(400, "this model was loaded without its vision projector: it takes text only",
                       param="messages", code="vision_unavailable")
    images = [read_image(ref, settings) for ref in rendered.images]
    videos = [read_video(ref, settings) for ref in rendered.videos]
    try:
        prompt = model.prepare_prompt(rendered.prompt, images, videos)
    except (QvlError, ValueError) as error:  # an undecodable video, an extreme aspect ratio
        raise APIError(400, str(error), param="messages", code="invalid_media") from None
    prompt_tokens = len(prompt)
    max_tokens = chat.max_tokens if chat.max_tokens is not None else model.n_ctx - prompt_tokens
    if max_tokens < 1 or prompt_tokens + max_tokens > model.n_ctx:
        raise APIError(400, f"this model's context is {model.n_ctx} tokens; the messages take {prompt_tokens} "
                       f"and max_tokens asks for {max_tokens} more", param="messages",
                       code="context_length_exceeded")
    return PreparedChat(prompt, GenerationConfig(max_new_tokens=max_tokens, **chat.sampling))


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
