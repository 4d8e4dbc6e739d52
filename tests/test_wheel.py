"""The wheel is what users install: it must carry the models and work outside the checkout.

``pip wheel .`` is built, installed into a fresh virtual environment in a temporary folder (its
dependencies come from the package index pip is configured with), and run from there, away from the
repository: a text, an image and a log file go through ``nncodec`` and back byte for byte, and
``nncodec info --json`` must show that the learned codec and its model coded each one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from conftest import RELIABILITY_LINES

REPO = Path(__file__).resolve().parent.parent
#: (testdata file, the codec and model that must have coded it)
SAMPLES = [
    ("text/dickens_head.txt", "text", "text-v3"),
    ("images/testcard_crop.ppm", "image", "image-v5"),
    ("logs/synthetic_app.log", "log", None),
]


def test_package_list_names_every_subpackage():
    """pyproject lists the packages (so that models/ can ship as nncodec.models): the list must
    hold every folder of the package, or a wheel would lack it."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "nncodec").rglob("__init__.py")
    }
    assert listed - {"nncodec.models"} == found


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, check=False, timeout=900)
    assert done.returncode == 0, f"{args}: {done.stderr.decode(errors='replace')[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_with_its_models_and_codes_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
          str(REPO)], REPO)  # fmt: skip
    (wheel,) = dist.glob("nncodec-*.whl")
    RELIABILITY_LINES.append(f"wheel: {wheel.name}, {wheel.stat().st_size / 2**20:.1f} MiB")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, nncodec = env_dir / "bin" / "python", env_dir / "bin" / "nncodec"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    where = _run([str(python), "-c", "import nncodec; print(nncodec.__file__)"], tmp_path).decode()
    assert str(REPO) not in where, "the wheel's nncodec must be the one imported"
    for name, codec, model in SAMPLES:
        data = (REPO / "testdata" / name).read_bytes()
        packed = _run([str(nncodec), "-c"], tmp_path, data)
        assert _run([str(nncodec), "-dc"], tmp_path, packed) == data
        (tmp_path / "x.nnc").write_bytes(packed)
        (frame,) = json.loads(_run([str(nncodec), "info", "--json", "x.nnc"], tmp_path))["frames"]
        assert frame["codec"] == codec and frame["block_codecs"].get(codec), f"{name}: {frame}"
        assert frame["model"] == model
