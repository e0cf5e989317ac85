"""Exceptions raised by qvl_local."""


class QvlError(Exception):
    """Base class of qvl_local's own errors."""


class ModelFormatError(QvlError, ValueError):
    """A model file is malformed, truncated, hostile, or not a model we can run."""


class VisionUnavailableError(QvlError, ValueError):
    """An image or video was given to a model loaded without its vision projector (mmproj)."""
