"""The codec registry: one line per codec, with its stable id, the kind of input it is the default
for and its rough speed. Ids are part of the file format (docs/FORMAT.md) and are never reused.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from nncodec.codecs.base import Codec
from nncodec.core.errors import CodecUnavailableError


@dataclass(frozen=True)
class Registered:
    codec_id: int
    name: str
    #: the module and class that implement it, imported on first use (a run loads only the codecs
    #: it meets: importing every codec and its libraries would cost small inputs ~0.1 s)
    module: str
    class_name: str
    #: the sniffed kind of input (nncodec/core/detect.py) this codec is the default for, if any
    default_for: str | None
    #: rough compression speed in bytes/s on one core, for ordering batch work only
    speed: float

    def load(self) -> type[Codec]:
        return getattr(importlib.import_module(f"nncodec.codecs.{self.module}"), self.class_name)


REGISTRY = (
    Registered(1, "stored", "stored", "StoredCodec", None, 1e9),
    Registered(2, "raw", "raw", "RawCodec", "binary", 2e6),
    Registered(3, "text", "text", "TextCodec", "text", 10e3),
    Registered(4, "image", "image", "ImageCodec", "image", 80e3),
    Registered(5, "log", "log", "LogCodec", "log", 2e6),
    Registered(6, "image-pc", "imagepc", "ImagePCCodec", None, 80e3),
    Registered(7, "classical", "classical", "ClassicalCodec", None, 0.5e6),
)

_BY_ID = {r.codec_id: r for r in REGISTRY}
_BY_NAME = {r.name: r for r in REGISTRY}
#: the codec each sniffed kind of input goes to
CODEC_FOR_KIND: dict[str, str] = {r.default_for: r.name for r in REGISTRY if r.default_for}
SPEED: dict[str, float] = {r.name: r.speed for r in REGISTRY}

#: codec names a user may ask for with ``--codec`` (image-pc is asked for with ``--image-model pc``)
CODEC_CHOICES = ("auto", "text", "image", "log", "raw", "stored")
#: ``--image-model`` choices and the codec each selects for images
IMAGE_MODELS = ("nextpixel", "pc")
IMAGE_CODEC_FOR_MODEL = {"nextpixel": "image", "pc": "image-pc"}


def codec_name(codec_id: int) -> str:
    """The name of a codec id, without importing the codec ("id N" for an unknown one)."""
    registered = _BY_ID.get(codec_id)
    return registered.name if registered else f"id {codec_id}"


def codec_by_name(name: str) -> type[Codec]:
    try:
        return _BY_NAME[name].load()
    except KeyError:
        raise CodecUnavailableError(f"codec '{name}' is not available in this build") from None


def codec_by_id(codec_id: int) -> type[Codec]:
    try:
        return _BY_ID[codec_id].load()
    except KeyError:
        raise CodecUnavailableError(
            f"needs unknown codec id {codec_id}, which this build does not provide "
            "(newer nncodec, or corrupt)"
        ) from None


__all__ = [
    "Codec", "CODEC_CHOICES", "CODEC_FOR_KIND", "IMAGE_MODELS",
    "IMAGE_CODEC_FOR_MODEL", "REGISTRY", "SPEED", "codec_by_id", "codec_by_name", "codec_name",
]  # fmt: skip
