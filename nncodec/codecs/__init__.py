"""Codec registry: stable ids and names, one line per codec.

Ids are part of the file format (docs/FORMAT.md) and are never reused.
"""

from __future__ import annotations

from nncodec.codecs.base import Codec
from nncodec.codecs.image import ImageCodec
from nncodec.codecs.imagepc import ImagePCCodec
from nncodec.codecs.log import LogCodec
from nncodec.codecs.raw import RawCodec
from nncodec.codecs.stored import StoredCodec
from nncodec.codecs.text import TextCodec
from nncodec.errors import CodecUnavailableError

_REGISTERED: list[type[Codec]] = [StoredCodec, RawCodec, TextCodec, ImageCodec, LogCodec, ImagePCCodec]

CODECS_BY_ID: dict[int, type[Codec]] = {cls.codec_id: cls for cls in _REGISTERED}
CODECS_BY_NAME: dict[str, type[Codec]] = {cls.name: cls for cls in _REGISTERED}

#: codec names a user may ask for, implemented or not yet (see ``codec_by_name``)
CODEC_CHOICES = ("auto", "text", "image", "log", "raw", "stored")
RESERVED_NAMES: dict[int, str] = {}
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
        known = RESERVED_NAMES.get(codec_id)
        what = f"codec '{known}' (id {codec_id})" if known else f"unknown codec id {codec_id}"
        raise CodecUnavailableError(
            f"needs {what}, which this build does not provide (newer nncodec, or corrupt)"
        ) from None


__all__ = [
    "Codec", "CODECS_BY_ID", "CODECS_BY_NAME", "CODEC_CHOICES", "IMAGE_MODELS", "IMAGE_CODEC_FOR_MODEL",
    "codec_by_id", "codec_by_name",
]  # fmt: skip
