"""Reading and checking a chat completion request: the body, its JSON, and the OpenAI fields we honour.

Every check here is cheap and needs no model: a bad request is refused before it costs anything.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from .errors import APIError
from .settings import ServerSettings

MAX_STOP_STRINGS = 4  # as the OpenAI API
MAX_TEMPERATURE = 2.0  # as the OpenAI API


@dataclass(frozen=True)
class MediaRef:
    """An image or video part as the client gave it; resolved to bytes or a path before generation."""

    kind: str  # "image" or "video"
    url: str
    param: str  # where it was, for error messages: messages[i].content[j]


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]  # render_chat's shape, media parts holding MediaRef values
    max_tokens: int | None
    sampling: dict[str, Any]  # GenerationConfig fields other than max_new_tokens
    stream: bool
    include_usage: bool


async def read_body(request: Request, limit: int) -> bytes:
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


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as error:
        raise APIError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return value


def parse_chat_request(body: Mapping[str, Any], settings: ServerSettings) -> ChatRequest:
    if "model" not in body:
        raise APIError(400, "'model' is required", param="model", code="missing_required_parameter")
    check_model_name(body["model"], settings.model_id, param="model")
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
    return ChatRequest(messages=messages, max_tokens=max_tokens,
                        sampling={k: v for k, v in sampling.items() if v is not None},
                        stream=stream, include_usage=_include_usage(body.get("stream_options")))


def check_model_name(name: Any, model_id: str, *, param: str | None) -> None:
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


def _parse_messages(messages: Any) -> tuple[list[dict[str, Any]], list[MediaRef]]:
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
        return {"type": media, media: MediaRef(media, url, where)}
    raise APIError(400, f"{where} has type {kind!r}; expected text, image_url or video_url", param=where)
