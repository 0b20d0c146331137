"""What a ComfyUI user sees: tooltips, warnings on the node / in a toast / in the history, the too-long prompt
choice, and error names (against the ComfyUI stand-ins; tests/integration checks the same on a real server)."""

from __future__ import annotations

import logging
import sys
import threading
import types
from types import SimpleNamespace

import pytest
import torch
from node_env import run
from safetensors.torch import save_file


class FakeServer:
    """server.PromptServer.instance: records what the pack sends to the browser."""

    client_id = "browser-1"  # ComfyUI sets it to the client that queued the running prompt

    def __init__(self):
        self.events, self.texts = [], []

    def send_sync(self, event, data, sid=None):
        assert sid == self.client_id  # only the person who queued the prompt sees it
        self.events.append((event, data))

    def send_progress_text(self, text, node_id, sid=None):
        assert sid == self.client_id
        self.texts.append((node_id, text))


@pytest.fixture
def server(monkeypatch):
    fake = FakeServer()
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(PromptServer=SimpleNamespace(instance=fake)))
    return fake


def _as_node(monkeypatch, cls, node_id):
    monkeypatch.setattr(cls, "hidden", SimpleNamespace(unique_id=node_id), raising=False)
    return cls


def test_every_input_of_every_node_has_a_tooltip(env):
    _, nodes = env
    missing = [f"{node_id}.{i.id}" for node_id, cls in nodes.items() for i in cls.define_schema().inputs
               if not (i.tooltip or "").strip()]
    assert missing == []


def test_an_empty_point_cloud_is_shown_on_the_node_in_a_toast_and_in_the_history(env, server, monkeypatch):
    _, nodes = env
    node = _as_node(monkeypatch, nodes["MofoDepthToPointCloud"], "17")
    depth = torch.rand(1, 16, 16) * 10 + 0.1  # noise: every pixel is on a depth edge at edge_rtol 0.04
    out = node.execute(image=torch.rand(1, 16, 16, 3), depth={"depth": depth}, fov_deg=65.0, edge_rtol=0.04,
                       outlier_removal=False, batch_index=0, filename_prefix="mofo/t")
    (msg,) = out.ui["mofo_warnings"]
    assert "every valid pixel lies on a depth edge" in msg and "raise edge_rtol" in msg
    assert out.ui["images"]  # the node's own UI output is kept
    assert server.events == [("mofo.warning", {"node": "17", "message": msg})]
    assert server.texts == [("17", f"⚠ {msg}")]


def test_a_quiet_node_adds_nothing_and_other_threads_are_not_collected(env, server, monkeypatch):
    _, nodes = env
    node = _as_node(monkeypatch, nodes["MofoScheduler"], "3")
    pack_log = logging.getLogger(sys.modules[nodes["MofoScheduler"].__module__].__name__)

    def other_thread():
        pack_log.warning("from another prompt's thread")

    real_execute = node.execute.__wrapped__

    def execute_with_noise(cls, **kw):  # a warning logged on another thread while this node runs
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        return real_execute(cls, **kw)

    from mofo_pack.nodes.messages import shows_warnings

    out = shows_warnings(execute_with_noise)(node, steps=2, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0,
                                             depth_denoise=1.0)
    assert out.ui is None and server.events == [] and server.texts == []


class LongClip:
    """A CLIP whose encoder returns `n` tokens of Qwen3-8B width (as ComfyUI's flux2 text encoder does)."""

    def __init__(self, n):
        self.n = n

    def tokenize(self, text):
        return {"qwen3_8b": text}

    def encode_from_tokens_scheduled(self, tokens):
        return [[torch.ones(1, self.n, 3 * 4096), {"attention_mask": torch.ones(1, self.n)}]]


def test_a_too_long_prompt_is_cut_with_a_visible_warning_or_refused(env, server, monkeypatch):
    _, nodes = env
    node = _as_node(monkeypatch, nodes["MofoTextEncode"], "5")
    out = node.execute(text="long", clip=LongClip(600))  # a saved workflow without the new widget: truncate
    (cond,) = out.args
    assert cond[0][0].shape == (1, 512, 3 * 4096) and cond[0][1]["attention_mask"].shape == (1, 512)
    (msg,) = out.ui["mofo_warnings"]
    assert "600 tokens" in msg and "last 88 are dropped" in msg
    with pytest.raises(ValueError, match="600 tokens.*set too_long to truncate") as e:
        node.execute(text="long", clip=LongClip(600), too_long="error")
    assert type(e.value).__name__ == "PromptTooLongError" and type(e.value).__module__ == "mofo_core"
    short = node.execute(text="short", clip=LongClip(300), too_long="error")
    assert short.args[0][0][0].shape[1] == 300 and short.ui is None


def test_depth_with_invalid_pixels_says_how_many(env, server):
    _, nodes = env
    d = torch.ones(1, 32, 32)
    d[:, :8] = 0.0  # a quarter without depth (sky, holes)
    out = nodes["MofoDepthEncode"].execute(near_is_bright=False, robust=True, depth={"depth": d})
    (msg,) = out.ui["mofo_warnings"]
    assert "256 of 1024 depth pixels (25.0%)" in msg
    assert server.events and server.texts == []  # no node id (no hidden input): a toast, no node text


def test_a_wrong_model_file_is_named_with_a_clean_error_type(env):
    tmp, nodes = env
    unet = {"input_blocks.0.0.weight": (4, 4, 3, 3), "middle_block.0.in_layers.0.weight": (4,),
            "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (8, 768)}
    save_file({k: torch.zeros(s) for k, s in unet.items()}, tmp / "models/diffusion_models/sd15_unet.safetensors")
    with pytest.raises(ValueError, match="Stable Diffusion 1.x UNet.*Load Diffusion Model") as e:
        run(nodes, "MofoModelLoader", model_name="sd15_unet.safetensors", weight_dtype="default")
    # what ComfyUI's error panel prints as the type (execution.py full_type_name): no folder path
    assert f"{type(e.value).__module__}.{type(e.value).__qualname__}" == "mofo_core.CheckpointError"


def test_sampler_gpus_splits_cfg_over_model_copies_and_refuses_missing_gpus(env, monkeypatch):
    """CFG-parallel in the node: a copy of the DiT per extra device, under ComfyUI's model management; the result
    equals one device. ComfyUI's device list is stubbed with a second (CPU) device; the GPU run is not tested."""
    tmp, nodes = env
    from node_env import pipeline

    model, pos, neg = pipeline(nodes, tmp)
    rs, ds = run(nodes, "MofoScheduler", steps=2, mode="joint", mu=1.1, log2_alpha=5.0, rgb_denoise=1.0,
                 depth_denoise=1.0)
    kw = dict(model=model, positive=pos, negative=neg, rgb_sigmas=rs, depth_sigmas=ds, cfg=3.0, depth_cfg=-1.0,
              seed=7, width=32, height=32, batch_size=1, noise="cpu")
    with pytest.raises(ValueError, match=r"gpus is 2 but ComfyUI sees 1 device.*set gpus to 1"):
        run(nodes, "MofoSampler", gpus=2, **kw)
    mm = sys.modules["comfy.model_management"]
    monkeypatch.setattr(mm, "get_all_torch_devices", lambda **k: [torch.device("cpu"), torch.device("cpu", 1)],
                        raising=False)
    one = run(nodes, "MofoSampler", gpus=1, **kw)
    two = run(nodes, "MofoSampler", gpus=2, **kw)
    assert list(model.replicas) == ["cpu:1"]
    copy = model.replicas["cpu:1"].model
    assert copy is not model.dit and torch.equal(next(copy.parameters()), next(model.dit.parameters()))
    for a, b in zip(one, two):
        assert (a["samples"] - b["samples"]).abs().max() <= 1e-5 * a["samples"].abs().max()
    run(nodes, "MofoSampler", gpus=2, **kw)
    assert model.replicas["cpu:1"].model is copy  # built once, kept for later runs
    out = nodes["MofoSampler"].execute(gpus=2, **{**kw, "cfg": 1.0})
    assert "nothing to split (cfg is 1)" in out.ui["mofo_warnings"][0]


def test_the_example_inputs_the_workflows_load_are_copied_into_the_input_folder(env, tmp_path, monkeypatch):
    """On start-up the pack copies its example depth map and photo into ComfyUI's input folder (never over a
    user's file), so the shared workflows open without a missing-file error."""
    import json

    from helpers import ROOT

    loaded = {n["widgets_values"][0] for wf in (ROOT / "workflows").glob("*.json")
              for n in json.loads(wf.read_text())["nodes"] if n["type"] == "LoadImage"}
    pack = sys.modules[env[1]["MofoSampler"].__module__.rsplit(".", 2)[0] + ".nodes"]
    shipped = {p.name for p in pack.EXAMPLE_INPUTS}
    assert shipped <= loaded | {"mofo_edit_example.png"} and "mofo_depth_example.png" in loaded
    fp = sys.modules["folder_paths"]
    monkeypatch.setattr(fp, "get_input_directory", lambda: str(tmp_path / "input"), raising=False)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "mofo_edit_example.png").write_bytes(b"the user's own file")
    written = pack.provide_example_inputs()
    assert [p.name for p in written] == ["mofo_depth_example.png"]
    assert (tmp_path / "input" / "mofo_edit_example.png").read_bytes() == b"the user's own file"
    assert all(p.stat().st_size < 50_000 for p in pack.EXAMPLE_INPUTS)  # small enough to ship in the repository
    assert pack.provide_example_inputs() == []  # never twice


def test_torch_compile_giving_up_is_shown_on_the_node(env, server, monkeypatch):
    """Dynamo's recompile-limit warning (real torch, a tiny function) reaches the node, rewritten; its other
    warnings do not."""
    from mofo_pack.nodes.messages import collect_warnings

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    torch._dynamo.reset()

    @torch.compile(backend="eager", dynamic=False)
    def f(x):
        return x * 2

    with collect_warnings("7") as messages:
        logging.getLogger("torch._dynamo.convert_frame").warning("some other dynamo warning")
        f(torch.ones(2))
        f(torch.ones(3))  # a second shape: over the limit of 1 compiled version
    torch._dynamo.reset()
    assert len(messages) == 1, messages
    assert messages[0].startswith("torch.compile stopped compiling 'f'") and "Restart ComfyUI" in messages[0]
    assert "recompile_limit" in messages[0]
    assert server.events == [("mofo.warning", {"node": "7", "message": messages[0]})]
    assert server.texts[-1] == ("7", f"⚠ {messages[0]}")
