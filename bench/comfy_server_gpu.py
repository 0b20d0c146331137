"""The shipped text -> RGB + depth + point-cloud workflow in a real ComfyUI server on a GPU, queued over HTTP.

    python bench/comfy_server_gpu.py --comfy PATH/TO/ComfyUI --base DIR --out OUT \
        [--modes bf16,fp8_e4m3fn,fp8_e4m3fn_fast] [--usable-gib 16,12] [--layers lazy|v0.29] [--tiny] \
        [--cold-modes bf16+compile,...] [--cold-restart-mode bf16+compile] [--restart-modes ...]

1. Writes full-size random model files in the release layouts into `DIR/models` (once): the DiT as
   `diffusion_models/modality_forcing/model.safetensors` (+ config.json), a native Qwen3-8B text encoder
   `text_encoders/qwen_3_8b.safetensors` (HF key layout, as Comfy-Org's klein file) and `vae/flux2-vae.safetensors`.
2. Starts ComfyUI's own `main.py` (no --cpu: dynamic VRAM / comfy-aimdo on where it works; the frontend is
   replaced by an empty folder, nothing here needs a browser). `--layers lazy` adds a custom node that shows
   comfy.ops the newer releases' condition for building layers without weights (from ~0.33 on every OS:
   `aimdo_enabled` alone; 0.29 also asks for Windows), so the run sees what users of current ComfyUI get.
3. Queues `workflows/mofo_text_to_rgbd_pointcloud.json` (converted with the server's /object_info) once per
   weight mode, listening on the websocket: seconds per sampler step (from the progress messages' values: ComfyUI
   sends at most one per 100 ms, see `step_rate`), the whole run (queue -> success) and the peak GPU memory in
   use (nvidia-smi, whole device) are recorded; the PNG, 16-bit depth and PLY it writes are checked.
   Cold starts come first (`--cold-modes`): each mode in a fresh server after the model files are evicted from
   the page cache and inductor's on-disk cache is emptied; `first_image_s` runs from the server's process start
   to its image written (load from disk + compile + generate). `--cold-restart-mode` then does the same with
   inductor's cache kept (what a second start of the day costs). TORCH_LOGS=recompiles,graph_breaks is set for
   every server, and the lines it writes are kept in the JSON (`compile_log`).
4. Restarts the server with `--reserve-vram` so that only `--usable-gib` GiB are left, and runs the bf16 workflow
   again: the DiT (22.3 GiB in bf16) no longer fits and is streamed.

Writes `OUT/comfy_server_gpu.json` and prints a table. `--tiny` is a CPU dry run (tiny weights, the pack's
transformers text-encoder loader) that checks the script itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
import comfy_harness as ch  # noqa: E402
from comfy_server_files import NEWER_LAYERS, write_models  # noqa: E402

WORKFLOW = ROOT / "workflows" / "mofo_text_to_rgbd_pointcloud.json"
INDUCTOR_CACHE = Path("/tmp/mofo_bench_inductor")  # TORCHINDUCTOR_CACHE_DIR of every server this bench starts
PROMPT = "a cosy reading nook with a green armchair, warm evening light"


# -- measuring ------------------------------------------------------------------------------------------------
class GpuMemory:
    """Peak device memory in use (MiB) from `nvidia-smi -lms`, between mark() and peak()."""

    def __init__(self):
        self.samples: list[tuple[float, int]] = []
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                          "-lms", "100"], stdout=subprocess.PIPE, text=True)
        except FileNotFoundError:
            self.proc = None
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.samples.append((time.time(), int(line.strip().split()[0])))

    def peak(self, since: float) -> int | None:
        vals = [m for t, m in self.samples if t >= since]
        return max(vals) if vals else None

    def close(self):
        if self.proc:
            self.proc.terminate()


def step_rate(events: list[tuple[float, int]]) -> float | None:
    """Seconds per sampler step from (arrival time, progress value) pairs.

    ComfyUI throttles progress messages without a preview to one per 100 ms (comfy/utils.py ProgressBar,
    PROGRESS_THROTTLE_MIN_INTERVAL), so at < 100 ms per step some steps send none: the gaps between messages
    then span several steps. The rate is the time between the first and the last message over the steps
    between their values. (Run 13 took the median gap and reported 2 steps as one for fp8.)
    """
    if len(events) < 2 or events[-1][1] <= events[0][1]:
        return None
    (t0, v0), (t1, v1) = events[0], events[-1]
    return (t1 - t0) / (v1 - v0)


async def queue_and_watch(server: ch.ComfyServer, prompt: dict, sampler_id: str, timeout: float = 900) -> dict:
    """Queue `prompt`, follow the websocket until it finishes; sampler step times and the whole run's time."""
    import aiohttp

    client = uuid.uuid4().hex
    steps: list[tuple[float, int]] = []  # (arrival time, progress value) of the sampler's progress messages
    total_steps = None
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{server.url}/ws?clientId={client}") as ws:
        t0 = time.time()
        pid = server.post("/prompt", {"prompt": prompt, "client_id": client})["prompt_id"]
        deadline = t0 + timeout
        while time.time() < deadline:
            msg = await ws.receive(timeout=timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            d = m.get("data", {})
            if d.get("prompt_id") not in (None, pid):
                continue
            if m["type"] == "progress" and str(d.get("node")) == sampler_id:
                steps.append((time.time(), int(d["value"])))
                total_steps = int(d["max"])
            elif m["type"] == "execution_error":
                raise RuntimeError(f"run failed: {d.get('exception_type')}: {d.get('exception_message')}")
            elif m["type"] == "execution_success":
                break
        total = time.time() - t0
    rate = step_rate(steps)
    return {"prompt_id": pid, "total_s": round(total, 2), "steps_seen": len(steps),
            "s_per_step": round(rate, 4) if rate else None,
            "sampler_s": round(rate * total_steps, 2) if rate and total_steps else None}


def build_prompt(server, mode: str, steps: int, tiny: bool, seed: int, edge_rtol: float) -> tuple[dict, str]:
    """The shipped workflow with `mode` = weight dtype, optionally "+compile" (e.g. "bf16+compile")."""
    mode, _, extra = mode.partition("+")
    prompt = ch.ui_to_api(json.loads(WORKFLOW.read_text()), server.object_info)
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "MofoSampler")
    for nid, node in list(prompt.items()):
        c, inp = node["class_type"], node["inputs"]
        if c == "MofoModelLoader":
            inp["weight_dtype"] = mode
            inp["compile"] = extra == "compile"
        elif c == "MofoScheduler":
            inp["steps"] = steps
        elif c == "MofoSampler":
            inp["seed"] = seed
            if tiny:
                inp.update(width=64, height=48)
        elif c == "MofoTextEncode" and inp.get("text"):
            inp["text"] = PROMPT
        if c == "MofoDepthToPointCloud":
            inp["edge_rtol"] = edge_rtol
        if "filename_prefix" in inp:
            inp["filename_prefix"] = f"bench_{mode}{extra}/{inp['filename_prefix'].split('/')[-1]}"
        if tiny and c == "CLIPLoader":
            prompt[nid] = {"class_type": "MofoTextEncoderLoader", "inputs": {"folder": "qwen3_tiny", "dtype": "fp32"}}
    if tiny:
        for node in prompt.values():
            if node["class_type"] == "MofoTextEncode" and "clip" in node["inputs"]:
                node["inputs"]["text_encoder"] = node["inputs"].pop("clip")
    return prompt, sampler


def free_models(server) -> None:
    """POST /free (unload every model, empty the caches); the route answers with an empty body."""
    import urllib.request

    req = urllib.request.Request(server.url + "/free", data=json.dumps({"unload_models": True, "free_memory": True})
                                 .encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=60).read()


def check_outputs(server, entry: dict) -> dict:
    import numpy as np
    from PIL import Image
    from plyfile import PlyData

    files = [server.base / "output" / o.get("subfolder", "") / o["filename"] for node in entry["outputs"].values()
             for key in ("images", "3d", "depth_files") for o in node.get(key, []) if o.get("type") == "output"]
    info = {"files": sorted(p.name for p in files)}
    for p in files:
        if p.suffix == ".png":
            a = np.asarray(Image.open(p)).astype(float)
            if not (np.isfinite(a).all() and a.std() > 0):
                raise RuntimeError(f"{p.name}: flat or non-finite image")
        if p.suffix == ".ply":
            info["points"] = len(PlyData.read(p)["vertex"])
    return info


def drop_page_cache(models: Path) -> dict:
    """Evict the model files from the OS page cache (what a cold start after a reboot reads), and check it took.

    `posix_fadvise(DONTNEED)` per file (as the `load` phase of bench_gpu.py does), then, where allowed,
    /proc/sys/vm/drop_caches. The check reads 1 GiB from the middle of the DiT file and reports its rate: a disk
    rate (~1-2 GB/s), not a memory rate (> 5 GB/s), shows the eviction worked; that GiB is evicted again after.
    """
    import os

    files = sorted(models.rglob("*.safetensors"))
    os.sync()

    def evict(path: Path) -> None:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    for f in files:
        evict(f)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
        dropped_all = True
    except OSError:
        dropped_all = False
    dit = max(files, key=lambda f: f.stat().st_size)
    n, chunk = 2**30, 2**24
    t = time.perf_counter()
    with open(dit, "rb", buffering=0) as f:
        f.seek(dit.stat().st_size // 2)
        got = sum(len(f.read(chunk)) for _ in range(n // chunk))
    rate = got / (time.perf_counter() - t) / 1e9
    evict(dit)
    return {"evicted_gb": round(sum(f.stat().st_size for f in files) / 1e9, 1), "drop_caches": dropped_all,
            "probe_read_gb_s": round(rate, 2)}


def run_server(a, base: Path, usable: float | None, modes: list[str], mem: GpuMemory, cold: str = "") -> list[dict]:
    """One server process running `modes` in turn. `cold`: "" (files as the previous run left them), "page"
    (model files evicted from the page cache first) or "page+inductor" (and inductor's on-disk cache emptied):
    then the first mode's row also has `first_image_s`, from the server's process start to its image written."""
    import shutil

    extra = ["--front-end-root", str(base / "no_frontend")]
    total = None
    if usable is not None:
        import torch

        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        extra += ["--reserve-vram", f"{total - usable:.1f}"]
    rows = []
    cold_info = {}
    if "inductor" in cold:
        shutil.rmtree(INDUCTOR_CACHE, ignore_errors=True)
    if cold:
        cold_info = drop_page_cache(base / "models")
        print(f"cold start ({cold}): {json.dumps(cold_info)}", flush=True)
    with ch.ComfyServer(base, extra_args=extra, cpu=a.tiny) as server:
        server.object_info = server.get("/object_info")
        log = server.log()
        for i, mode in enumerate(modes):
            prompt, sampler = build_prompt(server, mode, a.steps, a.tiny, seed=i, edge_rtol=a.edge_rtol)
            first_cold = bool(cold) and i == 0
            if not first_cold:  # a cold start has nothing loaded; otherwise each mode's peak on its own
                free_models(server)
                time.sleep(2)
            since = time.time()
            res = asyncio.run(queue_and_watch(server, prompt, sampler))
            entry = server.get(f"/history/{res['prompt_id']}")[res["prompt_id"]]
            res.update(mode=mode, usable_gib=usable, reserve_gib=None if usable is None else round(total - usable, 1),
                       peak_mib=mem.peak(since), **check_outputs(server, entry))
            if first_cold:
                res.update(cold=cold, first_image_s=round(time.time() - server.started, 1),
                           server_ready_s=round(server.ready_s, 1), **cold_info)
            rows.append(res)
            print(json.dumps(res), flush=True)
            if a.out:
                with open(Path(a.out) / "comfy_server_gpu.jsonl", "a") as f:
                    f.write(json.dumps(res) + "\n")
        log = server.log()
        tag = "all" if usable is None else str(int(usable))
        if cold:  # one server per cold mode: name the log after it
            tag += "_" + "_".join(x.replace("+", "_") for x in (cold, modes[0]))
        (Path(a.out) / f"comfyui_{tag}.log").write_text(log[-200_000:])
        rows.append({"server": True, "ready_s": round(server.ready_s, 1), "usable_gib": usable, "cold": cold,
                     "dynamic_vram": "DynamicVRAM support detected and enabled" in log,
                     "lazy_layers_loaded": "bench: lazy comfy.ops layers loaded" in log,
                     "compile_log": compile_log_lines(log),
                     "log_tail": log[-1500:]})
    return rows


def compile_log_lines(log: str, limit: int = 60) -> list[str]:
    """torch.compile's recompilation and graph-break reports in a server log (TORCH_LOGS is set by main)."""
    keys = ("Recompiling function", "recompile_limit", "cache_size_limit", "Graph break", "graph_break",
            "triggered by the following guard failure", "- 0/", "- 1/", "- 2/")
    return [line[:400] for line in log.splitlines() if any(k in line for k in keys)][:limit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfy", required=True, help="ComfyUI checkout (its main.py is started)")
    ap.add_argument("--base", required=True, help="ComfyUI --base-directory to create (models, output, ...)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--modes", default="bf16,fp8_e4m3fn,fp8_e4m3fn_fast")
    ap.add_argument("--usable-gib", default="16,12", help="GPU memory left to ComfyUI in the streaming runs")
    ap.add_argument("--layers", default="lazy", choices=["lazy", "v0.29"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--edge-rtol", type=float, default=0.0,
                    help="point-cloud edge test; 0 keeps every pixel (random-weight depth is all edges)")
    ap.add_argument("--restart-modes", default="bf16+compile",
                    help="run again in a fresh server (compile warm-up from inductor's on-disk cache)")
    ap.add_argument("--cold-modes", default="",
                    help="first, each in a fresh server with the model files evicted from the page cache and "
                    "inductor's cache emptied: time to the first image from a cold start (e.g. bf16+compile)")
    ap.add_argument("--cold-restart-mode", default="",
                    help="then this mode in a fresh server, page cache evicted, inductor's cache kept")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    import os

    os.environ["COMFYUI_DIR"] = a.comfy
    os.environ.setdefault("COMFYUI_PYTHON", sys.executable)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(INDUCTOR_CACHE)  # the servers inherit it (cold runs empty it)
    os.environ.setdefault("TORCH_LOGS", "recompiles,graph_breaks")  # why a compiled block recompiles / breaks
    base, out = Path(a.base), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ch.make_base(base, models_too=False)
    write_models(base / "models", a.tiny)
    (base / "no_frontend").mkdir(exist_ok=True)
    (base / "no_frontend" / "index.html").write_text("<!doctype html><title>no frontend</title>")
    if a.layers == "lazy":
        (base / "custom_nodes" / "bench_newer_layers.py").write_text(NEWER_LAYERS)
    print(f"model files ready in {time.time() - t0:.0f} s", flush=True)
    mem = GpuMemory()
    rows = []
    try:
        for mode in [m for m in a.cold_modes.split(",") if m]:
            rows += run_server(a, base, None, [mode], mem, cold="page+inductor")
        if a.cold_restart_mode:
            rows += run_server(a, base, None, [a.cold_restart_mode], mem, cold="page")
        if a.modes:
            rows += run_server(a, base, None, [m for m in a.modes.split(",") if m], mem)
        if a.restart_modes:
            rows += run_server(a, base, None, a.restart_modes.split(","), mem)
        for usable in [float(u) for u in a.usable_gib.split(",") if u] if not a.tiny else []:
            rows += run_server(a, base, usable, ["bf16"], mem)
    finally:
        mem.close()
        (out / "comfy_server_gpu.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'mode':<16}{'usable GiB':>11}{'s/step':>9}{'sampler s':>10}{'run s':>8}{'peak GiB':>9}{'points':>9}")
    for r in rows:
        if "mode" in r:
            peak = f"{r['peak_mib'] / 1024:.1f}" if r.get("peak_mib") else "-"
            print(f"{r['mode']:<16}{r['usable_gib'] or 'all':>11}{r['s_per_step'] or 0:>9.3f}"
                  f"{r['sampler_s'] or 0:>10.1f}{r['total_s']:>8.1f}{peak:>9}{r.get('points', 0):>9}")
        else:
            print(f"server ready in {r['ready_s']} s; dynamic VRAM {r['dynamic_vram']}; lazy layers seen "
                  f"{r['lazy_layers_loaded']}; {len(r['compile_log'])} recompile / graph-break lines")
    for r in rows:
        if r.get("first_image_s"):
            print(f"cold start ({r['cold']}, {r['mode']}): first image {r['first_image_s']} s after the server "
                  f"process started (ready in {r['server_ready_s']} s; evicted {r['evicted_gb']} GB, probe read "
                  f"{r['probe_read_gb_s']} GB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
