"""What the operator chose: the model's public name, access, and the limits on requests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import QvlError


@dataclass(frozen=True)
class ServerSettings:
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
