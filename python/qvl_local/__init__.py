"""qvl_local: run Qwen2-VL vision-language models from GGUF files on your own machine."""
from .errors import ModelFormatError, QvlError

__version__ = "0.1.0"
__all__ = ["ModelFormatError", "QvlError", "__version__"]
