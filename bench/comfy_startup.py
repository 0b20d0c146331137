"""ComfyUI start-up cost of this pack: the import time ComfyUI itself reports for it, and server-ready time.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/python python bench/comfy_startup.py [--runs 3]

Starts ComfyUI headless on loopback (CPU) with the pack linked in, --runs times, and prints the median of
"Import times for custom nodes" for the pack and of the time until /system_stats answers.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import comfy_harness as ch  # noqa: E402

IN_PROCESS = """
import sys, time, importlib.util, asyncio
import comfy.cli_args; comfy.cli_args.args.cpu = True
import comfy.model_management, comfy.ops, comfy.model_patcher, comfy.utils, folder_paths
from comfy_api.latest import io
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("mofo_pack", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
m = importlib.util.module_from_spec(spec); sys.modules["mofo_pack"] = m; spec.loader.exec_module(m)
t1 = time.perf_counter()
nodes = asyncio.run(asyncio.run(m.comfy_entrypoint()).get_node_list())
t2 = time.perf_counter()
print(f"{1000 * (t1 - t0):.1f} {1000 * (t2 - t1):.1f} {len(nodes)}")
"""


def in_process_ms() -> tuple[float, float, int]:
    """(root __init__ import, comfy_entrypoint + node modules) in ms, after ComfyUI's own imports."""
    out = subprocess.run([ch.comfy_python(), "-c", IN_PROCESS, str(ch.ROOT)], cwd=ch.comfy_dir(), check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if ch.comfy_dir() is None:
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    imports, ready = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "custom_nodes").mkdir()
        (base / "custom_nodes" / ch.PACK_NAME).symlink_to(ch.ROOT, target_is_directory=True)
        for _ in range(a.runs):
            with ch.ComfyServer(base) as s:
                ready.append(s.ready_s)
                m = re.search(r"([0-9.]+) seconds: .*" + re.escape(ch.PACK_NAME), s.log())
                imports.append(float(m.group(1)))
    runs = [in_process_ms() for _ in range(a.runs)]
    print(f"in-process: root __init__ median {statistics.median(r[0] for r in runs):.1f} ms, comfy_entrypoint + "
          f"node modules median {statistics.median(r[1] for r in runs):.1f} ms ({runs[0][2]} nodes)")
    print(f"pack import (ComfyUI's own report): median {statistics.median(imports):.3f} s over {a.runs} runs {imports}")
    print(f"server ready (with the pack): median {statistics.median(ready):.1f} s {[round(r, 1) for r in ready]}")


if __name__ == "__main__":
    main()
