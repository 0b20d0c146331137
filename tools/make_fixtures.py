"""Regenerate the golden parity fixtures in tests/fixtures/ from a local copy of the reference.

    python tools/make_fixtures.py --ref /path/to/modality-forcing [--out tests/fixtures]

The reference (`Duisterhof/modality-forcing`, package `flux_rgbd`) is never part of this repository: put
a checkout anywhere (e.g. `.ref/modality-forcing`, git-ignored) and point --ref at it. This script builds
tiny seeded models of both variants with the real key names, runs the reference's forward, schedules,
depth codec and samplers, and saves weights, inputs and outputs as small safetensors. It imports nothing
from mofo_core, so the fixtures are the reference's word alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY = dict(
    in_channels=128,
    depth_channels=256,
    context_in_dim=24,
    hidden_size=32,
    num_heads=2,
    depth_double=2,
    depth_single=2,
    depth_decoder_num_layers=1,
    axes_dim=(4, 4, 4, 4),
    theta=2000,
    mlp_ratio=3.0,
)
MU = 1.1


def bf16_exact(t: torch.Tensor) -> torch.Tensor:
    """Round to bf16-representable fp32 so fp32 -> bf16 -> fp32 casts are lossless in either codebase."""
    return t.to(torch.bfloat16).to(torch.float32)


def tiny_weights(dit, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in dit.state_dict().items():
        if name.endswith(".scale"):
            t = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        elif name.startswith("cross_alpha"):
            t = 0.7 * torch.randn(p.shape, generator=g)
        else:
            t = torch.randn(p.shape, generator=g) * (1.5 / max(p.shape[-1], 1) ** 0.5)
        out[name] = bf16_exact(t)
    return out


def meta(**kw) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in kw.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="path to a checkout of Duisterhof/modality-forcing")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.ref).resolve()))
    from flux_rgbd.depth.preprocess import DepthConfig, decode_depth, encode_depth
    from flux_rgbd.depth.schedule import ScheduleConfig, rollout_timesteps
    from flux_rgbd.dit import FluxRGBDDiT
    from flux_rgbd.model import FluxRGBD

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    sched_cfg = ScheduleConfig(rgb_shift_mu=MU, depth_shift_mu=MU)

    # -- schedules ---------------------------------------------------------------------------------
    sched = {}
    for steps in (1, 7, 50, 80):
        for mode, la in (("joint", None), ("joint", 5.0), ("joint", -2.0), ("i2d", None), ("d2i", None)):
            r, d = rollout_timesteps(sched_cfg, steps, mode=mode, log2_alpha=la)
            tag = f"{mode}_{steps}_{'none' if la is None else la}"
            sched[f"{tag}.rgb"], sched[f"{tag}.depth"] = r.contiguous(), d.contiguous()
    save_file(sched, out / "schedules.safetensors", metadata=meta(mu=MU))

    # -- depth codec ---------------------------------------------------------------------------------
    g = torch.Generator().manual_seed(11)
    depth_in = torch.rand(2, 32, 48, generator=g) * 9.0 + 0.5  # (B, H, W), positive
    cfg = DepthConfig(("unit_mean", "contract"), patch_size=16)
    enc = encode_depth(depth_in[..., None], cfg)  # (B, h, w, 256)
    tok = torch.rand(2, 2, 3, 256, generator=g) * 1.98  # contracted values in [0, 1.98)
    dec = decode_depth(tok, cfg)[..., 0]  # (B, 32, 48)
    save_file(
        {"depth": depth_in, "tokens": enc.reshape(2, -1, 256).contiguous(), "dec_tokens": tok.reshape(2, -1, 256),
         "decoded": dec.contiguous()},
        out / "depth_codec.safetensors",
    )

    # -- forward and samplers, per variant -------------------------------------------------------------
    for variant, mixing, seed in (("flux_rgbd_9b_v1", False, 1), ("flux_rgbd_9b_v2", True, 2)):
        dit = FluxRGBDDiT(**TINY, cross_stream_timestep_mixing=mixing)
        model = FluxRGBD(dit)
        weights = tiny_weights(dit, seed)
        model.load_state_dict({f"dit.{k}": v for k, v in weights.items()}, strict=True)
        model.eval()
        g = torch.Generator().manual_seed(100 + seed)
        B, h, w, L = 2, 3, 5, 9  # non-square latent grid, batch 2
        n = h * w
        data = {
            "rgb": torch.randn(B, n, 128, generator=g),
            "depth": torch.randn(B, n, 256, generator=g),
            "ctx": torch.randn(B, L, TINY["context_in_dim"], generator=g),
            "null_ctx": torch.randn(1, L, TINY["context_in_dim"], generator=g),
            "t_rgb": torch.tensor([0.7503, 0.0578]),
            "t_depth": torch.tensor([0.997, 0.3]),
        }
        sq = 4  # a square grid too
        data.update(
            sq_rgb=torch.randn(1, sq * sq, 128, generator=g),
            sq_depth=torch.randn(1, sq * sq, 256, generator=g),
            sq_ctx=torch.randn(1, L, TINY["context_in_dim"], generator=g),
            sq_t_rgb=torch.tensor([0.25]),
            sq_t_depth=torch.tensor([0.9]),
        )
        with torch.no_grad():
            r, d = model(data["rgb"], data["t_rgb"], data["ctx"], h, w, data["depth"], data["t_depth"])
            data["out_fp32.rgb"], data["out_fp32.depth"] = r, d
            r, d = model(data["sq_rgb"], data["sq_t_rgb"], data["sq_ctx"], sq, sq, data["sq_depth"], data["sq_t_depth"])
            data["sq_out_fp32.rgb"], data["sq_out_fp32.depth"] = r, d

            # samplers in fp32 (CPU generator): joint + CFG + tilt, i2d, d2i
            common = dict(ctx=data["ctx"], img_height=h, img_width=w, schedule_config=sched_cfg)
            r, d = model.sample(**common, num_steps=6, mode="joint", cfg_scale=3.0, seed=7,
                                null_text_embed=data["null_ctx"], log2_alpha=5.0)
            data["joint.rgb"], data["joint.depth"] = r, d
            data["clean_rgb"] = torch.randn(B, n, 128, generator=g)
            r, d = model.sample(**common, num_steps=5, mode="i2d", cfg_scale=1.0, seed=8, clean_rgb=data["clean_rgb"])
            data["i2d.rgb"], data["i2d.depth"] = r, d
            dmap = torch.rand(B, h * 16, w * 16, generator=g) * 4 + 0.5
            data["clean_depth"] = encode_depth(dmap[..., None], cfg).reshape(B, n, 256)
            r, d = model.sample(**common, num_steps=5, mode="d2i", cfg_scale=4.0, seed=9,
                                clean_depth=data["clean_depth"], null_text_embed=data["null_ctx"])
            data["d2i.rgb"], data["d2i.depth"] = r, d

            # bf16 body + fp32 depth head, as the reference runner loads it
            model.to(torch.bfloat16)
            model.dit.depth_final_layer.to(torch.float32)
            r, d = model(data["rgb"], data["t_rgb"], data["ctx"], h, w, data["depth"], data["t_depth"])
            data["out_bf16.rgb"], data["out_bf16.depth"] = r.float(), d.float()
        data = {k: v.contiguous() for k, v in data.items()}
        save_file({f"dit.{k}": v for k, v in weights.items()}, out / f"{variant}_weights.safetensors",
                  metadata=meta(variant=variant, **{k: v for k, v in TINY.items() if k in ("axes_dim", "theta")}))
        save_file(data, out / f"{variant}_io.safetensors",
                  metadata=meta(h=h, w=w, sq=sq, joint_steps=6, joint_cfg=3.0, joint_seed=7, log2_alpha=5.0,
                                i2d_steps=5, i2d_seed=8, d2i_steps=5, d2i_cfg=4.0, d2i_seed=9))
    print(f"wrote fixtures to {out}")  # noqa: T201 (a script, not library code)


if __name__ == "__main__":
    main()
