"""The codec registry: one line per codec, with its stable id, the kind of input it is the default
for and its rough speed. Ids are part of the file format (docs/FORMAT.md) and are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from nncodec.codecs.base import Codec
from nncodec.codecs.classical import ClassicalCodec
from nncodec.codecs.image import ImageCodec
from nncodec.codecs.imagepc import ImagePCCodec
from nncodec.codecs.log import LogCodec
from nncodec.codecs.raw import RawCodec
from nncodec.codecs.stored import StoredCodec
from nncodec.codecs.text import TextCodec
from nncodec.core.errors import CodecUnavailableError


@dataclass(frozen=True)
class Registered:
    codec: type[Codec]
    #: the sniffed kind of input (nncodec/core/detect.py) this codec is the default for, if any
    default_for: str | None
    #: rough compression speed in bytes/s on one core, for ordering batch work only
    speed: float


REGISTRY = (
    Registered(StoredCodec, None, 1e9),
    Registered(RawCodec, "binary", 2e6),
    Registered(TextCodec, "text", 10e3),
    Registered(ImageCodec, "image", 80e3),
    Registered(LogCodec, "log", 2e6),
    Registered(ImagePCCodec, None, 80e3),
    Registered(ClassicalCodec, None, 0.5e6),
)

CODECS_BY_ID: dict[int, type[Codec]] = {r.codec.codec_id: r.codec for r in REGISTRY}
CODECS_BY_NAME: dict[str, type[Codec]] = {r.codec.name: r.codec for r in REGISTRY}
#: the codec each sniffed kind of input goes to
CODEC_FOR_KIND: dict[str, str] = {r.default_for: r.codec.name for r in REGISTRY if r.default_for}
SPEED: dict[str, float] = {r.codec.name: r.speed for r in REGISTRY}

#: codec names a user may ask for with ``--codec`` (image-pc is asked for with ``--image-model pc``)
CODEC_CHOICES = ("auto", "text", "image", "log", "raw", "stored")
#: ``--image-model`` choices and the codec each selects for images
IMAGE_MODELS = ("nextpixel", "pc")
IMAGE_CODEC_FOR_MODEL = {"nextpixel": "image", "pc": "image-pc"}


def codec_by_name(name: str) -> type[Codec]:
    try:
        return CODECS_BY_NAME[name]
    except KeyError:
        raise CodecUnavailableError(f"codec '{name}' is not available in this build") from None


def codec_by_id(codec_id: int) -> type[Codec]:
    try:
        return CODECS_BY_ID[codec_id]
    except KeyError:
        raise CodecUnavailableError(
            f"needs unknown codec id {codec_id}, which this build does not provide "
            "(newer nncodec, or corrupt)"
        ) from None


__all__ = [
    "Codec", "CODECS_BY_ID", "CODECS_BY_NAME", "CODEC_CHOICES", "CODEC_FOR_KIND", "IMAGE_MODELS",
    "IMAGE_CODEC_FOR_MODEL", "REGISTRY", "SPEED", "codec_by_id", "codec_by_name",
]  # fmt: skip
