"""A container is untrusted input: the names it stores cannot send output outside the requested
directory, and nothing in a container or model file is ever unpickled or evaluated."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from conftest import REPO, run_cli

import nncodec
from nncodec.core import engine
from nncodec.core.container import FileMetadata

HOSTILE_NAMES = [
    "../../escaped.txt",
    "/tmp/nncodec-absolute-escape.txt",
    "..",
    ".",
    "sub/dir/inner.txt",
    "a\\..\\b.txt",
]


def _packed_with_name(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    engine.compress_stream(
        io.BytesIO(data), out, codec="raw", content_size=len(data), metadata=FileMetadata(name, 0o644, 10**18)
    )
    return out.getvalue()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_stored_names_cannot_escape_the_output_directory(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    (work / "x.nnc").write_bytes(_packed_with_name(name, b"payload\n"))
    before = {p for p in tmp_path.rglob("*")}
    result = run_cli("-d", "-N", "x.nnc", cwd=work)
    assert b"Traceback" not in result.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p.parent == work for p in created), created
    assert not Path("/tmp/nncodec-absolute-escape.txt").exists()
    if result.returncode == 0:
        assert [p.read_bytes() for p in created] == [b"payload\n"]


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.name for alias in node.names)
            names.add(getattr(node, "module", None) or "")
    return names


def test_the_coding_path_never_unpickles_or_evaluates():
    """Everything nncodec runs to compress and decompress (training scripts excluded: they read
    their own checkpoints) is free of pickle, marshal, eval, exec and torch.load; models are read
    with safetensors."""
    forbidden = {"pickle", "marshal", "eval", "exec", "load_state_dict", "shelve", "dill", "joblib"}
    modules = [p for p in (REPO / "nncodec").rglob("*.py") if "training" not in p.parts]
    assert len(modules) > 10
    for module in modules:
        calls = _calls(module)
        assert not calls & forbidden, f"{module.relative_to(REPO)} uses {calls & forbidden}"
        if "torch" in calls:
            assert "load" not in calls, f"{module.relative_to(REPO)}: torch and a load() call"
    assert {"safe_open", "load_file"} <= _calls(REPO / "nncodec" / "core" / "modelstore.py")  # one reader


def test_a_decoded_container_is_only_data(tmp_path):
    """Decoding never runs code from the container: a payload that would be a pickle bomb is just
    stored bytes, returned as they are."""
    bomb = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    assert nncodec.decompress(nncodec.compress(bomb)) == bomb
    assert not (tmp_path / "pwned").exists()
