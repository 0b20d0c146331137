"""ComfyUI start-up cost of this pack: the import time ComfyUI itself reports for it, and server-ready time.

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/python python bench/comfy_startup.py [--runs 3]

Starts ComfyUI headless on loopback (CPU) with the pack linked in, --runs times, and prints the median of
"Import times for custom nodes" for the pack and of the time until /system_stats answers.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import comfy_harness as ch  # noqa: E402


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
    print(f"pack import (ComfyUI's own report): median {statistics.median(imports):.3f} s over {a.runs} runs {imports}")
    print(f"server ready (with the pack): median {statistics.median(ready):.1f} s {[round(r, 1) for r in ready]}")


if __name__ == "__main__":
    main()
