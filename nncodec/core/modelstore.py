"""The model store: finding model files by id, verifying their sha256, reading and caching them.

Models live as ``<model_id>.safetensors`` (with a ``<model_id>.json`` card beside it) in the
directories named by ``$NNCODEC_MODEL_PATH`` (``os.pathsep``-separated), then among the models that
come with nncodec (``nncodec/models`` when installed from a wheel, the repository's ``models/`` in a
checkout). A frame records the id and the sha256 of the weights it was coded with; decoding
refuses a missing file or a different hash with a message naming the model.

Model files are safetensors (nothing in them is executed) whose metadata names their format.
``load`` builds the in-memory model of a verified file once per process, for every model kind (text,
next-pixel, circuit), so a batch's worker process loads each model once, not once per file.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nncodec.core.errors import ModelError

MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: the models that come with nncodec: nncodec/models in an installed wheel, models/ in a checkout
_PACKAGED, _CHECKOUT = (Path(__file__).resolve().parents[n] / "models" for n in (1, 2))
BUNDLED_MODEL_DIR = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT

_hash_cache: dict[tuple[str, int, int], bytes] = {}
_models: dict[tuple[str, Path, bytes], object] = {}
_models_lock = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A model file that was found and whose sha256 is known."""

    model_id: str
    path: Path
    sha256: bytes


def model_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("NNCODEC_MODEL_PATH", "").split(os.pathsep) if p]
    return [*dirs, BUNDLED_MODEL_DIR]


def file_sha256(path: Path) -> bytes:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _hash_cache[key] = digest.digest()
    return _hash_cache[key]


def _installed_paths(model_id: str) -> list[Path]:
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise ModelError(f"invalid model id {model_id!r}")
    paths = [d / f"{model_id}.safetensors" for d in model_dirs()]
    return [p for p in paths if p.is_file()]


def find_model(model_id: str) -> LoadedModel:
    """Locate a model by id for encoding: the first installed file with that id."""
    paths = _installed_paths(model_id)
    if not paths:
        searched = ", ".join(str(d) for d in model_dirs())
        raise ModelError(f"model '{model_id}' is not installed (searched {searched})")
    return LoadedModel(model_id, paths[0], file_sha256(paths[0]))


def require_model(model_id: str, sha256: bytes) -> LoadedModel:
    """Locate the exact model a frame was coded with (id and hash), or explain why it cannot."""
    paths = _installed_paths(model_id)
    for path in paths:
        if file_sha256(path) == sha256:
            return LoadedModel(model_id, path, sha256)
    if not paths:
        searched = ", ".join(str(d) for d in model_dirs())
        raise ModelError(
            f"needs model '{model_id}' (sha256 {sha256.hex()[:16]}…), which is not installed "
            f"(searched {searched})"
        )
    raise ModelError(
        f"needs model '{model_id}' with sha256 {sha256.hex()[:16]}…, but the installed "
        f"{paths[0]} has {file_sha256(paths[0]).hex()[:16]}…; install the model version the "
        "file was made with"
    )


def read_model_file(path: Path, expected_format: str) -> tuple[dict[str, str], dict[str, object]]:
    """(metadata, tensors as numpy arrays) of a safetensors model file whose metadata says
    ``expected_format``; another format is a ValueError."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != expected_format:
        raise ValueError(f"{path} is not an {expected_format} model")
    return metadata, load_file(str(path))


def load(model: LoadedModel, build: Callable[[Path], T]) -> T:
    """The in-memory model ``build(path)`` makes of a verified model file, built once per process
    and kind of model (the result is shared: models are read-only once built)."""
    key = (f"{build.__module__}.{build.__qualname__}", model.path, model.sha256)
    with _models_lock:
        if key not in _models:
            _models[key] = build(model.path)
        return _models[key]  # type: ignore[return-value]


def models_loaded() -> int:
    """How many models this process has built (each once)."""
    return len(_models)
