"""qvl_local: run Qwen2-VL, Qwen2.5-VL and Qwen3-VL vision-language models from GGUF files on your own machine.

    import qvl_local
    model = qvl_local.load("qwen2-vl-2b-instruct-q4_k_m.gguf")   # finds mmproj*.gguf beside it
    print(model.chat([{"role": "user", "content": [
        {"type": "image", "image": "photo.jpg"},
        {"type": "text", "text": "What is in this picture?"}]}]))
"""
from importlib import import_module
from typing import Any

from .errors import ContextLengthError, ModelFormatError, QvlError

__version__ = "0.1.0"

# Heavy parts (the compiled core, the tokenizer, HTTP) load on first use, so that `import qvl_local`
# stays quick and the pure-Python pieces work on their own.
_LAZY = {
    "load": "model",
    "Model": "model",
    "VisionUnavailableError": "model",
    "Qwen2VLConfig": "config",
    "GenerationConfig": "generation",
    "GenerationResult": "generation",
    "preprocess_image": "preprocess",
    "MediaError": "preprocess",
    "pull": "registry",
}

__all__ = ["ContextLengthError", "ModelFormatError", "QvlError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'qvl_local' has no attribute {name!r}")
