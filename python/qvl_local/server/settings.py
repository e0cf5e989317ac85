"""What the operator chose: the model's public name, access, and the limits on requests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import QvlError

JSON_ESCAPE_ROOM = 2  # a request's text may grow this much as JSON (a CJK character as \uXXXX: 3 -> 6 bytes)


@dataclass(frozen=True)
class ServerSettings:
    model_id: str
    api_key: str | None = None
    media_dir: Path | None = None  # local files (file:// URLs) are read only under this folder
    max_queue: int = 8  # requests admitted at once, the running one included
    # A request body, data URIs included; None: the most text the model's context can hold (as
    # JSON) plus `max_media_body_bytes`.
    max_body_bytes: int | None = None
    max_media_body_bytes: int = 48 * 2**20  # room for data URIs (images, videos) in the default body limit
    max_image_bytes: int = 20 * 2**20  # one encoded image (data URI, download or file)
    max_image_pixels: int = 2**26  # width x height of one image before resizing
    max_media: int = 16  # images plus videos in one request
    download_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_queue", "max_body_bytes", "max_media_body_bytes", "max_image_bytes", "max_image_pixels",
                     "max_media"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.media_dir is not None:
            media_dir = Path(self.media_dir).resolve()
            if not media_dir.is_dir():
                raise QvlError(f"media folder not found: {self.media_dir}")
            object.__setattr__(self, "media_dir", media_dir)

    def body_limit(self, context_text_bytes: int) -> int:
        """The request body limit, for a model whose context holds at most `context_text_bytes` of text."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return context_text_bytes * JSON_ESCAPE_ROOM + self.max_media_body_bytes
