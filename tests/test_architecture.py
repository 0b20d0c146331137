"""The core stays ComfyUI-free and side-effect-free at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "node_helpers", "nodes",
                 "server", "latent_preview", "execution"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_mofo_core_imports_no_comfyui_module_statically():
    files = sorted((ROOT / "mofo_core").rglob("*.py"))
    assert len(files) >= 8
    bad = {str(f.relative_to(ROOT)): sorted(_imports(f) & COMFY_MODULES) for f in files}
    assert not {k: v for k, v in bad.items() if v}


def test_importing_mofo_core_loads_no_comfyui_and_no_heavy_optional_module():
    code = (
        "import sys, pkgutil, importlib, mofo_core;"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(mofo_core.__path__, 'mofo_core.')"
        " if not m.name.endswith('__main__')];"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(COMFY_MODULES)!r} "
        "or m.split('.')[0] in ('transformers', 'huggingface_hub', 'scipy', 'matplotlib'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_print_in_library_code():
    for f in (ROOT / "mofo_core").rglob("*.py"):
        tree = ast.parse(f.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
        allowed = f.name in ("cli.py", "__main__.py")  # the CLI's job is to print the written paths
        assert allowed or not calls, f"print() in {f}"
