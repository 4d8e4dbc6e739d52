"""The package's layering rule, checked on every import statement (README, "How it is built").

* the library never imports ``nncodec.cli`` (the command line sits on top of it, like zstd's
  programs/ on lib/);
* nothing the coding path imports depends on ``nncodec.training`` (torch stays out of it);
* a codec never imports another codec (``nncodec.codecs.base`` is their shared interface, and the
  registry ``nncodec/codecs/__init__.py`` is the one place that lists them all);
* ``nncodec.nn`` and ``nncodec.entropy`` know nothing about files, containers, codecs or models:
  they import only each other, ``nncodec.core.errors`` and ``nncodec.core.framing``, none of the
  file modules (pathlib, shutil, tempfile, glob, safetensors) and never call ``open``;
* the data layers (``text``, ``image``, ``log``) know nothing about codecs, the engine or the
  container;
* the package root holds only ``__init__.py`` and ``__main__.py``, and every subpackage says its job
  in its ``__init__.py`` docstring.

Imports are read with ``ast`` (top-level and function-level alike), so a lazy import inside a
function is held to the same rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nncodec"

#: names the registry exports (``from nncodec.codecs import Codec`` reads as ``nncodec.codecs.Codec``)
REGISTRY_NAMES = ("Codec",)
FILE_MODULES = {"pathlib", "shutil", "tempfile", "glob", "safetensors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> set[str]:
    """Every module ``path`` (the module ``name``) imports, absolute and dotted (``from a import b``
    counts as ``a.b`` too, since ``b`` may be a module)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def opens_files(path: Path) -> bool:
    """Whether ``path`` calls the builtin ``open``."""
    tree = ast.parse(path.read_text(), str(path))
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "ppmd7" not in p.parts)


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(name: str, imported: set[str]) -> list[str]:
    """The layering rules the module ``name`` breaks by importing ``imported``."""
    ours = {m for m in imported if within(m, "nncodec")}
    found = []
    if not within(name, "nncodec.cli") and name != "nncodec.__main__":
        found += [f"imports the command line ({m})" for m in ours if within(m, "nncodec.cli")]
    if not within(name, "nncodec.training"):
        found += [f"imports training code ({m})" for m in ours if within(m, "nncodec.training")]
    if within(name, "nncodec.codecs") and name not in ("nncodec.codecs", "nncodec.codecs.base"):
        found += [
            f"imports another codec ({m})"
            for m in ours
            if within(m, "nncodec.codecs")
            and not any(within(m, a) for a in ("nncodec.codecs.base", name))
            and m not in ("nncodec.codecs", *(f"nncodec.codecs.{n}" for n in REGISTRY_NAMES))
        ]
        found += [f"imports the codec registry ({m})" for m in ours if m == "nncodec.codecs"]
    if within(name, "nncodec.nn") or within(name, "nncodec.entropy"):
        allowed = ("nncodec.nn", "nncodec.entropy", "nncodec.core.errors", "nncodec.core.framing")
        found += [
            f"{name.split('.')[1]}/ imports {m}" for m in ours if not any(within(m, a) for a in allowed)
        ]
        found += [f"{name.split('.')[1]}/ imports file module {m}" for m in imported if m in FILE_MODULES]
    if any(within(name, f"nncodec.{layer}") for layer in ("text", "image", "log")):
        banned = ("nncodec.codecs", "nncodec.core.engine", "nncodec.core.container")
        found += [f"data layer imports {m}" for m in ours if any(within(m, b) for b in banned)]
    return sorted(found)


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_keeps_the_layering_rule(path):
    name = module_name(path)
    assert violations(name, imports_of(path)) == []
    if within(name, "nncodec.nn") or within(name, "nncodec.entropy"):
        assert not opens_files(path), f"{name} opens files"


def test_the_check_fails_on_violating_imports():
    """The rule is not vacuous: each kind of violation is caught."""
    cases = {
        "nncodec.core.engine": {"nncodec.cli.main"},
        "nncodec.codecs.text": {"nncodec.codecs.image"},
        "nncodec.nn.mixing": {"nncodec.core.container"},
        "nncodec.entropy.backends": {"pathlib"},
        "nncodec.log.templates": {"nncodec.codecs.log"},
        "nncodec.image.nextpixel": {"nncodec.training.image.train"},
    }
    for name, imported in cases.items():
        assert violations(name, imported), name
    assert violations("nncodec.cli.main", {"nncodec.codecs.text", "nncodec.core.engine"}) == []


def test_lazy_and_relative_imports_are_seen(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..cli import main\n    import nncodec.codecs.text\n")
    imported = imports_of(probe, "nncodec.nn.probe")
    assert {"nncodec.cli", "nncodec.cli.main", "nncodec.codecs.text"} <= imported
    assert violations("nncodec.nn.probe", imported)
    probe.write_text("def f(path):\n    return open(path).read()\n")
    assert opens_files(probe)


def test_package_root_holds_no_modules():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


@pytest.mark.parametrize(
    "init", sorted(p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE), ids=str
)
def test_every_subpackage_says_its_job(init):
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc, f"{init} has no docstring"
    assert 1 <= len(doc.strip().splitlines()) <= 3, f"{init}: say the package's job in two lines"


def test_registry_entries_load_the_codec_they_name():
    """The registry imports codecs on first use by module and class name: each entry must load a
    class whose id and name are the entry's (ids are file format), and ids and names are unique."""
    from nncodec.codecs import REGISTRY, codec_by_id, codec_by_name

    assert len({r.codec_id for r in REGISTRY}) == len({r.name for r in REGISTRY}) == len(REGISTRY)
    for entry in REGISTRY:
        codec = entry.load()
        assert (codec.codec_id, codec.name) == (entry.codec_id, entry.name)
        assert codec_by_id(entry.codec_id) is codec_by_name(entry.name) is codec


def test_the_command_line_starts_without_the_learned_codecs():
    """Start-up is part of every small file's time: importing the CLI loads no codec beyond the
    engine's fallbacks, and not numpy (a fresh interpreter, so earlier imports do not count)."""
    import subprocess
    import sys

    code = (
        "import sys, nncodec.cli.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('numpy', 'PIL', 'nncodec.codecs.'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "numpy" not in loaded and "PIL" not in loaded
    for heavy in ("text", "image", "imagepc", "log"):
        assert f"'nncodec.codecs.{heavy}'" not in loaded
