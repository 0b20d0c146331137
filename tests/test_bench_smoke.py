"""CPU smoke run of bench/bench_gpu.py --tiny, and the speed helpers it exercises (reader, fp8 fallback)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, rel_l2

import mofo_core as mc
from mofo_core.model import fp8, perf
from mofo_core.weights.checkpoint import iter_threaded


def test_bench_tiny_runs_on_cpu(tmp_path):
    cmd = [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--tiny", "--device", "cpu", "--out", str(tmp_path),
           "--phases", "env,speed,fp8,load,mem", "--variants", "flux_rgbd_9b_v2", "--mem-modes", "bf16",
           "--fp8-scalings", "row"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert not res.get("errors")
    sp = res["speed"]["flux_rgbd_9b_v2"]
    assert sp["eager_forward"]["sdpa"]["median_ms"] > 0 and sp["cfg_step_batched"]["median_ms"] > 0
    assert sp["auto_backend"] == "sdpa"  # CPU keeps PyTorch's own SDPA
    assert res["fp8"]["row_fast_accum"]["forward_rel_err_vs_bf16"]["rgb"] < 0.1
    assert res["mem"]["bf16_cap24"]["pass"] and res["mem"]["bf16_cap24"]["rgb_shape"] == [1, 64, 64, 3]
    assert {r["loader"] for r in res["load"]["runs"]} >= {"ours", "ours_safe_open", "ours_fp8_stream"}
    assert "measurement" in r.stdout  # the summary table
    assert not [p.name for p in tmp_path.glob(".*tmp*")]  # results.json / profiles.txt written atomically


def _bench_modules():
    """bench/common.py and the bench/gpu package, imported as bench_gpu.py imports them."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    import common
    from gpu import report

    return common, report


def test_bench_random_models_are_the_core_builders():
    common, _ = _bench_modules()
    from mofo_core.encoders.autoencoder import build_autoencoder

    cfg = mc.config.tiny("flux_rgbd_9b_v2", context_in_dim=48)
    before = torch.get_rng_state()
    dit = common.random_dit(cfg, torch.device("cpu"), seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random state is left alone
    core = mc.build_dit(cfg, dtype=torch.bfloat16, seed=3).state_dict()
    got = dit.state_dict()
    assert set(got) == set(core)
    for k, v in got.items():  # same numbers (CPU); the depth head kept in fp32 as load_dit keeps it
        assert v.dtype == (torch.float32 if k.startswith("depth_final_layer.") else torch.bfloat16), k
        assert torch.equal(v.to(torch.bfloat16), core[k]), k
    ae = common.random_decoder(True, torch.device("cpu"), seed=5)
    assert ae.encoder is None
    ref = build_autoencoder(mc.AutoEncoderConfig.tiny(), seed=5).decoder.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in ae.decoder.state_dict().items())


def test_bench_report_table_and_atomic_save(tmp_path, capsys):
    from types import SimpleNamespace

    _, report = _bench_modules()
    res = {"speed": {"flux_rgbd_9b_v2": {
        "eager_forward": {"sdpa": {"median_ms": 100.0}}, "fastest_backend": "sdpa",
        "cfg_step_batched": {"median_ms": 150.0}, "compiled": "skipped on CPU (use --cpu-compile)",
        "reference": {"eager_forward": {"median_ms": 50.0}, "cfg_step": {"median_ms": 300.0}}}},
        "fp8": {"native": False, "row_fast_accum": {"compiled": {"forward": {"median_ms": 40.0}}}},
        "load": {"ours_cold_best_s": 1.5}, "errors": {"mem": "boom"}}
    b = SimpleNamespace(res=res, a=SimpleNamespace(sample_steps=3), cfg=lambda v: None,
                        tflops=lambda cfg, ms, batch=1: batch * 1000.0 / ms)
    report.table(b)
    lines = capsys.readouterr().out.splitlines()
    row = {ln[:48].strip(): ln[48:].split() for ln in lines if ln.startswith(("v2 ", "fp8 "))}
    assert row["v2 forward eager sdpa (ref kernel)"] == ["100.0", "10", "2.00x"]  # 100 ms vs the reference's 50
    assert row["v2 CFG step eager batched (auto)"] == ["150.0", "13", "0.50x"]  # batch 2: 2 * 1000 / 150
    assert row["v2 forward REFERENCE eager"] == ["50.0", "20", "1.00x"]
    assert row["fp8 row_fast_accum forward compiled"] == ["40.0", "0.80x", "<=", "40", "ms"]
    assert row["v2 forward eager sdpa"] == ["100.0", "10", "2.00x"]  # the fastest kernel
    assert row["v2 CFG step REFERENCE (2 seq.)"] == ["300.0", "7", "1.00x"]
    assert len(row) == 6  # nothing for the compiled rows that did not run
    assert any(ln.startswith("cold load: ours 1.50 s, ref nan s") for ln in lines)
    assert "ERRORS: {'mem': 'boom'}" in lines
    report.save(tmp_path, res, ["kernel table"])
    assert json.loads((tmp_path / "results.json").read_text()) == res
    assert (tmp_path / "profiles.txt").read_text() == "kernel table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profiles.txt", "results.json"]


def test_threaded_reader_is_bit_exact(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    sd = {"a": torch.randn(7, 5, generator=g).to(torch.bfloat16), "b": torch.randn(3, generator=g),
          "c": torch.randn(()), "d": torch.randn(40, 33, generator=g).to(torch.float16), "e": torch.zeros(0)}
    save_file(sd, str(tmp_path / "x.safetensors"))
    got = dict(iter_threaded(tmp_path / "x.safetensors", "cpu", chunk_bytes=64, window_bytes=100, threads=3))
    assert set(got) == set(sd)
    for k, v in sd.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v)


@pytest.mark.parametrize("scaling", fp8.SCALINGS)
def test_fp8_linear_matches_dequantised_product(scaling):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(48, 32, generator=g) / 32**0.5
    x = torch.randn(2, 5, 32, generator=g)
    lin = fp8.FP8Linear.from_weight(w, scaling=scaling)
    assert lin.weight.dtype == torch.float8_e4m3fn
    y = lin(x)
    assert y.shape == (2, 5, 48)
    assert rel_l2(y, x @ w.t()) < 0.08  # e4m3 operands: ~2-4% per product


def test_fp8_dit_keeps_heads_and_embedders(tmp_path):
    cfg = mc.config.tiny("flux_rgbd_9b_v2", context_in_dim=48)
    dit = mc.build_dit(cfg, dtype=torch.bfloat16)
    x = (torch.randn(1, 16, 128), torch.randn(1, 16, 256), torch.randn(1, 8, 48), torch.rand(1), torch.rand(1))
    r0, d0 = dit.predict(*x, 4, 4)
    from safetensors.torch import save_file

    save_file({f"dit.{k}": v for k, v in dit.state_dict().items()}, str(tmp_path / "m.safetensors"))
    q = mc.load_dit(tmp_path / "m.safetensors", dtype=torch.bfloat16, fp8="tensor", reader="threaded")
    assert isinstance(q.single_blocks[0].linear1, fp8.FP8Linear)
    assert q.depth_final_layer.linear.weight.dtype == torch.float32
    assert q.txt_in.weight.dtype == torch.bfloat16 and q.single_stream_modulation.lin.weight.dtype == torch.bfloat16
    r, d = q.predict(*x, 4, 4)
    assert r.dtype == torch.bfloat16 and d.dtype == torch.float32
    assert rel_l2(r.float(), r0.float()) < 0.1 and rel_l2(d, d0) < 0.1


def test_attention_options_on_cpu():
    dit = mc.build_dit(mc.config.tiny())
    assert perf.set_attention(dit, "auto") == "sdpa" and dit.attn_fn is perf.attention_fn("sdpa")
    assert perf.set_attention(dit, "cudnn") == "sdpa"  # pinned GPU kernels fall back off CUDA
    with pytest.raises(ValueError):
        perf.set_attention(dit, "nope")


def test_server_step_rate_counts_steps_between_throttled_messages():
    """ComfyUI sends at most one progress message per 100 ms without a preview: at 92 ms per step half the steps
    send none. The bench's rate comes from the messages' values, not from the gaps between them."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from comfy_server_gpu import step_rate

    # what a 92 ms step under the 100 ms throttle delivers: steps 1, 3, 5, ... 49, and the final 50
    events = [(0.092 * v, v) for v in [*range(1, 50, 2), 50]]
    assert len(events) == 26
    assert step_rate(events) == pytest.approx(0.092)
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:])]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.184)  # the old median-gap reading: twice the step
    assert step_rate(events[:1]) is None and step_rate([]) is None
    assert step_rate([(0.0, 3), (1.0, 3)]) is None  # no step between the two messages


def test_compile_blocks_makes_room_for_many_sizes_and_dtypes(monkeypatch):
    """Each size / batch / weight dtype is one more compiled entry of the block code: dynamo's default of 8
    would silently drop to eager in a long ComfyUI session, so compile_blocks raises it (never lowers it)."""
    dit = mc.build_dit(mc.config.tiny())
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    perf.compile_blocks(dit)
    assert torch._dynamo.config.recompile_limit == perf.RECOMPILE_LIMIT == 64
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 200)
    perf.compile_blocks(dit)
    assert torch._dynamo.config.recompile_limit == 200


def test_step_timeline_splits_a_step_into_busy_and_idle():
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_e2e import step_timeline

    k = [(0, 1, "spin_kernel"), (10, 11, "spin_kernel"),  # markers after steps 1 and 2
         (12, 30, "nvjet_gemm"), (25, 40, "triton_fused_x"),  # overlapping: busy 12..40
         (45, 50, "cudnn_flash_sdpa"), (60, 61, "spin_kernel"), (70, 80, "nvjet_gemm")]
    t = step_timeline(k, "spin")
    assert t["step_ms"] == pytest.approx(0.049)  # from the 2nd marker's end (11) to the 3rd's start (60)
    assert t["busy_ms"] == pytest.approx(0.033) and t["idle_ms"] == pytest.approx(0.016)
    assert t["kernels"] == 3 and t["by_class_ms"]["gemm"] == pytest.approx(0.018)
    assert t["largest_gaps"][0] == (0.01, "cudnn_flash_sdpa", "(step end)")
    assert step_timeline(k[:2], "spin") == {}


def test_depth_decoder_blocks_compile_once():
    """Every depth-decoder block gets the same input layout, so compiled they share one graph (the first block
    used to get a strided view of the joint sequence: a second compile of the same code, seen on the H200)."""
    from torch._dynamo.testing import CompileCounter

    dit = mc.build_dit(dataclasses.replace(mc.config.tiny(), depth_decoder_num_layers=3))
    counter = CompileCounter()
    torch._dynamo.reset()
    for block in dit.depth_decoder_blocks:
        block.compile(backend=counter, dynamic=False)
    x = (torch.randn(2, 16, 128), torch.randn(2, 16, 256), torch.randn(2, 8, dit.config.context_in_dim),
         torch.rand(2), torch.rand(2))  # batch 2, as a batched CFG step
    with torch.no_grad():
        dit.predict(*x, 4, 4)
    torch._dynamo.reset()
    assert counter.frame_count == 1
