"""The core stays ComfyUI-free and side-effect-free at import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

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


# The core's packages, lowest first: a module may import from its own package and from lower ones, never from a
# higher one (so following the model path or the seed through the code never climbs back up). The root package's
# __init__ (the public surface) and __main__ sit above everything.
LAYERS = [
    {"config", "errors", "ops", "atomic", "latents", "camera"},
    {"model"},
    {"weights"},
    {"encoders"},
    {"depth"},
    {"geometry"},
    {"sampling"},
    {"app"},
]


def _core_imports() -> dict[str, set[str]]:
    """module (dotted, under mofo_core) -> the mofo_core modules it imports, relative imports resolved."""
    core = ROOT / "mofo_core"
    out: dict[str, set[str]] = {}
    for f in core.rglob("*.py"):
        parts = list(f.relative_to(core).with_suffix("").parts)
        pkg = parts[:-1]
        mod = ".".join(pkg if parts[-1] == "__init__" else parts) or "__init__"
        targets = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                targets.add(".".join(base + (node.module.split(".") if node.module else [])) or "__init__")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mofo_core"):
                targets.add(node.module.removeprefix("mofo_core").lstrip(".") or "__init__")
        out[mod] = targets
    return out


def _layer(mod: str) -> int:
    head = mod.split(".")[0]
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    return len(LAYERS)  # __init__ / __main__: the top


def test_core_packages_import_only_downwards():
    graph = _core_imports()
    assert len(graph) > 30 and any(graph.values())  # the walk found the modules and their imports
    upward = sorted(f"{m} -> {t} ({LAYERS[_layer(m)] if _layer(m) < len(LAYERS) else 'top'})"
                    for m, ts in graph.items() for t in ts if _layer(t) > _layer(m))
    assert upward == []
    unplaced = sorted(m for m in graph if _layer(m) == len(LAYERS) and m not in ("__init__", "__main__"))
    assert unplaced == []  # every module belongs to a layer
