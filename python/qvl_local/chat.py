"""Qwen-VL chat prompt: messages in the HF / OpenAI shape rendered to one prompt string.

Each image becomes `<|vision_start|><|image_pad|><|vision_end|>` and each video
`<|vision_start|><|video_pad|><|vision_end|>`; the media items are returned in prompt order so the
caller can preprocess them and expand each pad token to the right number of vision tokens.
The template is the model file's; for files without one the package ships each family's Jinja
template (templates/*.jinja, as Qwen published them), never a Go template.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qvl_local.errors import QvlError

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"
DEFAULT_TEMPLATE = "qwen2vl"  # Qwen2-VL's and Qwen2.5-VL's (the two are the same)
ROLES = ("system", "user", "assistant")
# Per-item settings a media part may carry, as qwen-vl-utils reads them.
MEDIA_OPTIONS = {
    "image": ("min_pixels", "max_pixels", "resized_height", "resized_width"),
    "video": ("fps", "nframes", "min_pixels", "max_pixels", "total_pixels", "min_frames", "max_frames"),
}


class ChatFormatError(QvlError, ValueError):
    """Malformed chat messages, or a chat template that fails to render them."""


@dataclass(frozen=True)
class RenderedChat:
    prompt: str
    # Media in prompt order, passed through as given; an item whose part had settings (fps,
    # max_pixels, ...) comes as a dict {"image"|"video": value, **settings}.
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)


def render_chat(messages: Sequence[Mapping[str, Any]], *, template: str | None = None,
                add_generation_prompt: bool = True) -> RenderedChat:
    """Render `messages` with `template` (a GGUF `tokenizer.chat_template`, run in a jinja2
    sandbox) or, when None, with the built-in Qwen2-VL template."""
    normalized = _normalize_messages(messages)
    if template is None:
        template = builtin_chat_template(DEFAULT_TEMPLATE)
    prompt = _render_template(template, normalized, add_generation_prompt)
    return RenderedChat(prompt=prompt, images=_media_items(normalized, "image"), videos=_media_items(normalized, "video"))


@lru_cache(maxsize=None)
def builtin_chat_template(name: str) -> str:
    """The package's copy of a model family's Jinja chat template (`templates/<name>.jinja`)."""
    path = resources.files(__package__).joinpath("templates", f"{name}.jinja")
    if not path.is_file():
        raise QvlError(f"no built-in chat template named {name!r}")
    return path.read_text(encoding="utf-8")


def _media_items(messages: list[dict[str, Any]], kind: str) -> list:
    items = []
    for message in messages:
        for part in message["content"] if isinstance(message["content"], list) else ():
            if part["type"] == kind:
                settings = {key: part[key] for key in MEDIA_OPTIONS[kind] if key in part}
                items.append({kind: part[kind], **settings} if settings else part[kind])
    return items


# --- validation and normalization ----------------------------------------------------------------

def _normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checked copies of the messages whose list content holds only
    {"type": "text"|"image"|"video", <type>: value} parts."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ChatFormatError("messages must be a list of {'role': ..., 'content': ...} mappings")
    if not messages:
        raise ChatFormatError("messages must not be empty")
    return [_normalize_message(index, message) for index, message in enumerate(messages)]


def _normalize_message(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ChatFormatError(f"{where} must be a mapping, not {type(message).__name__}")
    role = message.get("role")
    if role not in ROLES:
        raise ChatFormatError(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
    if "content" not in message:
        raise ChatFormatError(f"{where} has no 'content'")
    content = message["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    if isinstance(content, Sequence) and not isinstance(content, bytes):
        parts = [_normalize_part(f"{where}.content[{i}]", part) for i, part in enumerate(content)]
        return {"role": role, "content": parts}
    raise ChatFormatError(f"{where} content must be a string or a list of parts, "
                          f"not {type(content).__name__}")


def _normalize_part(where: str, part: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise ChatFormatError(f"{where} must be a mapping, not {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        text = _required(where, part, "text")
        if not isinstance(text, str):
            raise ChatFormatError(f"{where} 'text' must be a string, not {type(text).__name__}")
        return {"type": "text", "text": text}
    if kind in ("image", "video"):
        settings = {key: part[key] for key in MEDIA_OPTIONS[kind] if part.get(key) is not None}
        return {"type": kind, kind: _required(where, part, kind), **settings}
    if kind in ("image_url", "video_url"):
        media = kind.removesuffix("_url")
        return {"type": media, media: _url_of(where, _required(where, part, kind))}
    raise ChatFormatError(f"{where} has type {kind!r}; expected text, image, image_url, video "
                          "or video_url")


def _required(where: str, part: Mapping[str, Any], key: str) -> Any:
    value = part.get(key)
    if value is None:
        raise ChatFormatError(f"{where} of type {part.get('type')!r} has no {key!r} value")
    return value


def _url_of(where: str, value: Any) -> str:
    """The URL of an OpenAI `image_url` / `video_url` value: a string or {"url": string}."""
    url = value.get("url") if isinstance(value, Mapping) else value
    if not isinstance(url, str) or not url:
        raise ChatFormatError(f"{where} needs a URL string or {{'url': string}}, got {value!r}")
    return url


# --- rendering ---------------------------------------------------------------------------------------

def _render_template(template: str, messages: list[dict[str, Any]],
                     add_generation_prompt: bool) -> str:
    try:
        return _compile_template(template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, add_vision_id=False)
    except jinja2.TemplateError as err:
        raise ChatFormatError(f"chat template failed: {err}") from None


@lru_cache(maxsize=8)
def _compile_template(template: str) -> jinja2.Template:
    """Compile in a sandbox configured like HF transformers' chat-template environment, so
    templates written for it (whitespace control, `raise_exception`, `tojson`) render the same."""
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[loopcontrols])
    environment.globals["raise_exception"] = _raise_template_error
    environment.filters["tojson"] = _tojson
    return environment.from_string(template)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # jinja2's own tojson HTML-escapes <, >, & and ', which would change the prompt text.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise_template_error(message: str) -> None:
    raise jinja2.TemplateError(message)
