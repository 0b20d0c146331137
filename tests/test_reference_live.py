"""Direct comparison with a local copy of the reference, over other seeds, grids, batches and key prefixes.

Runs when the reference is available: set MOFO_REF_DIR to a checkout of Duisterhof/modality-forcing (the
default `.ref/modality-forcing` is used when present). Skips with that reason otherwise (as in CI).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, rel_l2

import mofo_core as mc

REF = Path(os.environ.get("MOFO_REF_DIR", ROOT / ".ref" / "modality-forcing"))
pytestmark = pytest.mark.skipif(
    not (REF / "flux_rgbd" / "dit.py").is_file(), reason=f"reference checkout not found at {REF} (set MOFO_REF_DIR)"
)

CASES = [  # (variant, seed, batch, h, w, L, prefixed)
    ("flux_rgbd_9b_v1", 3, 1, 1, 1, 4, True),
    ("flux_rgbd_9b_v2", 4, 3, 2, 5, 11, False),
    ("flux_rgbd_9b_v1", 5, 2, 6, 2, 16, False),
    ("flux_rgbd_9b_v2", 6, 1, 4, 4, 512, True),
]


@pytest.fixture(scope="module")
def ref():
    sys.path.insert(0, str(REF))
    from flux_rgbd.depth.schedule import ScheduleConfig
    from flux_rgbd.dit import FluxRGBDDiT
    from flux_rgbd.model import FluxRGBD

    return FluxRGBDDiT, FluxRGBD, ScheduleConfig(rgb_shift_mu=1.1, depth_shift_mu=1.1)


def _pair(ref, variant, seed, prefixed, ctx_dim=40):
    FluxRGBDDiT, FluxRGBD, _ = ref
    cfg = mc.config.tiny(variant, context_in_dim=ctx_dim)
    ours = mc.build_dit(cfg, seed=seed)
    sd = {k: v.to(torch.bfloat16).float() for k, v in ours.state_dict().items()}  # bf16-exact weights
    theirs = FluxRGBD(
        FluxRGBDDiT(
            in_channels=128,
            depth_channels=256,
            context_in_dim=ctx_dim,
            hidden_size=cfg.hidden_size,
            num_heads=cfg.num_heads,
            depth_double=cfg.depth_double,
            depth_single=cfg.depth_single,
            depth_decoder_num_layers=cfg.depth_decoder_num_layers,
            axes_dim=cfg.axes_dim,
            cross_stream_timestep_mixing=cfg.cross_stream_timestep_mixing,
        )
    )
    theirs.load_state_dict({f"dit.{k}": v for k, v in sd.items()}, strict=True)
    file_sd = {f"dit.{k}" if prefixed else k: v for k, v in sd.items()}
    return theirs.eval(), file_sd


@pytest.mark.parametrize("variant,seed,b,h,w,L,prefixed", CASES)
def test_forward_fp32_and_bf16(ref, variant, seed, b, h, w, L, prefixed):
    theirs, sd = _pair(ref, variant, seed, prefixed)
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.randn(b, h * w, 128, generator=g),
        torch.randn(b, h * w, 256, generator=g),
        torch.randn(b, L, 40, generator=g),
        torch.rand(b, generator=g),
        torch.rand(b, generator=g),
    )
    ours = mc.load_dit(sd)
    with torch.no_grad():
        want = theirs(x[0], x[3], x[2], h, w, x[1], x[4])
    got = ours.predict(*x, h, w)
    assert rel_l2(got[0], want[0]) <= 1e-5 and rel_l2(got[1], want[1]) <= 1e-5
    theirs.to(torch.bfloat16)
    theirs.dit.depth_final_layer.to(torch.float32)
    with torch.no_grad():
        want = theirs(x[0], x[3], x[2], h, w, x[1], x[4])
    got = mc.load_dit(sd, dtype=torch.bfloat16).predict(*x, h, w)
    assert rel_l2(got[0].float(), want[0].float()) <= 1e-2 and rel_l2(got[1], want[1]) <= 1e-2


@pytest.mark.parametrize("variant,seed,b,h,w,L,prefixed", CASES)
@pytest.mark.parametrize("mode", ["joint", "i2d", "d2i"])
def test_samplers_fp32(ref, variant, seed, b, h, w, L, prefixed, mode):
    theirs, sd = _pair(ref, variant, seed, prefixed)
    sched_cfg = ref[2]
    g = torch.Generator().manual_seed(seed + 1)
    ctx, null = torch.randn(b, L, 40, generator=g), torch.randn(1, L, 40, generator=g)
    clean_rgb, clean_depth = torch.randn(b, h * w, 128, generator=g), torch.randn(b, h * w, 256, generator=g)
    steps, cfg, la = 4 + seed % 3, (1.0, 2.5, 4.0)[seed % 3], (None, 5.0, -1.5)[seed % 3]
    with torch.no_grad():
        want = theirs.sample(
            ctx=ctx,
            img_height=h,
            img_width=w,
            num_steps=steps,
            mode=mode,
            schedule_config=sched_cfg,
            cfg_scale=cfg,
            seed=seed,
            clean_rgb=clean_rgb,
            clean_depth=clean_depth,
            null_text_embed=null,
            log2_alpha=la,
        )
    rs, ds = mc.schedule(steps, mode=mode, log2_alpha=la)
    got = mc.sample(
        mc.load_dit(sd),
        ctx,
        null,
        rs,
        ds,
        height=h,
        width=w,
        cfg=cfg,
        seed=seed,
        rgb=clean_rgb if mode == "i2d" else None,
        depth=clean_depth if mode == "d2i" else None,
    )
    assert rel_l2(got[0], want[0]) <= 1e-4 and rel_l2(got[1], want[1]) <= 1e-4
