"""Run a real ComfyUI headless on loopback with this pack and tiny checkpoints, and drive it over HTTP.

Used by tests/integration (pytest) and tests/e2e (browser). The ComfyUI checkout comes from COMFYUI_DIR and is
run with COMFYUI_PYTHON (default: this interpreter). Nothing here touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-ModalityForcing"
UI_ONLY = {"MarkdownNote", "Note", "PrimitiveNode", "Reroute"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def comfy_dir() -> Path | None:
    d = os.environ.get("COMFYUI_DIR")
    return Path(d) if d and (Path(d) / "main.py").is_file() else None


def comfy_python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- tiny model files ----------------------------------------------------------------------------------
def write_comfy_vae(path: Path, seed: int = 0) -> None:
    """A random FLUX.2 VAE single file that ComfyUI's VAELoader accepts: its encoder must have the release
    width (ComfyUI fixes ch 128, ch_mult 1,2,4,4, 2 res blocks); the decoder may be narrower, so it is."""
    import torch
    from safetensors.torch import save_file

    from mofo_core.encoders.autoencoder import AutoEncoderConfig, build_autoencoder

    enc = build_autoencoder(AutoEncoderConfig(), seed=seed).encoder
    dec = build_autoencoder(AutoEncoderConfig(ch=32), seed=seed + 1).decoder
    sd = {}
    for prefix, part in (("encoder.", enc), ("decoder.", dec)):
        for k, v in part.state_dict().items():
            if not k.startswith("bn."):
                sd[prefix + k] = v.to(torch.bfloat16) if v.is_floating_point() else v
    for k, v in enc.state_dict().items():
        if k.startswith("bn."):
            sd[k] = v
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def make_base(base: Path, *, models_too: bool = True) -> Path:
    """ComfyUI --base-directory with the pack installed (symlink), inputs and (unless models_too=False) tiny models."""
    from PIL import Image

    from mofo_core.app.tiny_assets import build_tiny_dit_files, build_tiny_qwen3

    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    models = base / "models"
    if models_too:
        build_tiny_dit_files(models / "diffusion_models" / "modality_forcing", seed=0)
        build_tiny_qwen3(models / "text_encoders" / "qwen3_tiny", seed=0)
        (models / "vae").mkdir(parents=True, exist_ok=True)
        write_comfy_vae(models / "vae" / "flux2-vae.safetensors")
    inp = base / "input"
    inp.mkdir(exist_ok=True)
    rng = __import__("numpy").random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 72, 3), dtype="uint8")).save(inp / "example.png")
    grad = (255 * __import__("numpy").linspace(0.1, 1.0, 64)[:, None].repeat(64, 1)).astype("uint8")
    Image.fromarray(grad).convert("RGB").save(inp / "depth_example.png")
    return base


# -- newer ComfyUI behaviour on an older checkout ------------------------------------------------------------
LAZY_LAYERS_MARK = "mofo-test: lazy comfy.ops layer loaded"
_FORCE_LAZY_LAYERS = f'''"""Test-only custom node: ComfyUI's dynamic-VRAM layer building, forced on a CPU server.

Since ~0.33 ComfyUI builds comfy.ops Linear layers without weights whenever dynamic VRAM (comfy-aimdo) is on,
on every OS; 0.29 does so on Windows only (comfy/ops.py disable_weight_init.Linear: WINDOWS and aimdo_enabled).
comfy.ops is shown both switches on (model_management.WINDOWS, memory_management.aimdo_enabled) while it builds
and loads layers for this pack's model code (a frame under mofo_core/ on the stack), so a 0.29 checkout builds the
pack's DiT as the newer releases do. The rest of ComfyUI keeps 0.29's switches: on a CPU server comfy-aimdo is not
initialised, so core's own loaders and models cannot take the dynamic-VRAM path there.
The lazy loader is wrapped only to log that it ran, so a test can tell the lazy path was really taken.
"""
import logging
import os
import sys
import types

import comfy
import comfy.memory_management
import comfy.model_management
import comfy.ops

_PACK_CODE = os.sep + "mofo_core" + os.sep


def _for_pack() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if _PACK_CODE in f.f_code.co_filename:
            return True
        f = f.f_back
    return False


class _Override(types.ModuleType):
    """A live view of a module; some attributes read `value` while the pack's code is on the stack."""

    def __init__(self, real, **over):
        super().__init__(real.__name__)
        self.__dict__["_real"], self.__dict__["_over"] = real, over

    def __getattr__(self, name):
        over = self.__dict__["_over"]
        if name in over:
            return over[name] if _for_pack() else getattr(self.__dict__["_real"], name)
        return getattr(self.__dict__["_real"], name)


comfy.ops.comfy = _Override(
    comfy,
    memory_management=_Override(comfy.memory_management, aimdo_enabled=True),
    model_management=_Override(comfy.model_management, WINDOWS=True),
)
_lazy = comfy.ops.disable_weight_init._lazy_load_from_state_dict
_seen = []


def _logged(module, state_dict, prefix, *args, **kwargs):
    if not _seen:
        _seen.append(prefix)
        logging.info("{LAZY_LAYERS_MARK} (%s)", prefix)
    return _lazy(module, state_dict, prefix, *args, **kwargs)


comfy.ops.disable_weight_init._lazy_load_from_state_dict = staticmethod(_logged)
NODE_CLASS_MAPPINGS = {{}}
'''


def force_lazy_layers(base: Path) -> None:
    """Make the server in `base` build comfy.ops layers without weights, as ComfyUI >= ~0.33 does on NVIDIA."""
    (base / "custom_nodes" / "mofo_test_force_lazy_layers.py").write_text(_FORCE_LAZY_LAYERS)


# -- server --------------------------------------------------------------------------------------------
class ComfyServer:
    def __init__(self, base: Path, *, port: int | None = None, extra_args: list[str] | None = None, cpu: bool = True):
        self.base, self.port, self.cpu = base, port or free_port(), cpu
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "comfyui.log"
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ComfyServer:
        cmd = [comfy_python(), "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port",
               str(self.port), "--disable-auto-launch", "--base-directory", str(self.base), *self.extra_args]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, cwd=comfy_dir(), stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                self.get("/system_stats")
                self.ready_s = time.time() - self.started
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not start in 180 s:\n{self.log()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')[:3000]}") from e

    def run_prompt(self, prompt: dict, timeout: float = 600, *, client_id: str | None = None) -> dict:
        """Queue an API-format prompt and wait for its history entry; raises with the error if it failed."""
        entry = self.finish(self.queue(prompt, client_id), timeout)
        status = entry.get("status", {})
        if status.get("status_str") == "error" or not status.get("completed", True):
            raise RuntimeError(f"prompt failed: {json.dumps(self.errors(entry))[:4000]}")
        return entry

    def queue(self, prompt: dict, client_id: str | None = None) -> str:
        return self.post("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})["prompt_id"]

    def finish(self, pid: str, timeout: float = 600) -> dict:
        """The history entry of a queued prompt once it is done (succeeded or failed)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.get(f"/history/{pid}")
            if pid in h:
                return h[pid]
            time.sleep(0.5)
        raise TimeoutError(f"prompt {pid} did not finish in {timeout} s")

    @staticmethod
    def errors(entry: dict) -> list[dict]:
        """The execution_error messages of a history entry (exception_type, exception_message, node_type, ...)."""
        return [m[1] for m in entry.get("status", {}).get("messages", []) if m[0] == "execution_error"]


# -- UI workflow -> API prompt ---------------------------------------------------------------------------
def _spec_type(spec) -> str:
    t = spec[0]
    return "COMBO" if isinstance(t, list) else t


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (nodes / links / widgets_values) to an API prompt, as "Export (API)" does."""
    links = {lk[0]: lk for lk in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        t = node["type"]
        if t in UI_ONLY or node.get("mode", 0) in (2, 4):
            continue
        if t not in object_info:
            raise KeyError(f"node type {t} (node {node['id']}) is not registered in this ComfyUI")
        info = object_info[t]
        inputs = {}
        linked = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                lk = links[inp["link"]]
                linked[inp["name"]] = [str(lk[1]), lk[2]]
        values = list(node.get("widgets_values") or [])
        order = info.get("input_order", {})
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name in order.get("required", []) + order.get("optional", []):
            spec = specs[name]
            is_widget = _spec_type(spec) in WIDGET_TYPES and not (len(spec) > 1 and spec[1].get("forceInput"))
            if is_widget and values:
                v = values.pop(0)
                if len(spec) > 1 and (spec[1].get("control_after_generate") or spec[1].get("image_upload")):
                    values.pop(0) if values else None
                if name not in linked:
                    inputs[name] = v
            if name in linked:
                inputs[name] = linked[name]
        prompt[str(node["id"])] = {"class_type": t, "inputs": inputs}
    return prompt


def install_note() -> str:
    return f"pack linked as custom_nodes/{PACK_NAME} -> {ROOT}"


def copytree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
