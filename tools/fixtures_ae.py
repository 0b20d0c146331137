"""Regenerate the FLUX.2 autoencoder parity fixtures from a local copy of the reference.

    python tools/fixtures_ae.py --ref /path/to/modality-forcing [--out tests/fixtures]

Builds the reference's `Flux2Encoder` / `Flux2Decoder` (`flux_rgbd/_flux2/autoencoder.py`) on a tiny
config, gives them seeded random weights and non-trivial batch-norm statistics, runs them in fp32 on seeded
inputs in the reference's own conventions (NHWC images in [-1, 1], NHWC latents) and writes:

* `ae_tiny_encoder.safetensors`, `ae_tiny_decoder.safetensors`: the weights, in the release's split-file
  key layout (`ae_encoder.safetensors` / `ae_decoder.safetensors`; both carry the same `bn.*`). Conv and
  GroupNorm tensors are stored as bf16 to keep the files small; their values are bf16-exact, so the fp32
  models the reference ran and the fp32 models a loader builds from these files are the same.
* `ae_io.safetensors`: inputs and outputs, plus the config as metadata.

Imports nothing from mofo_core, so the fixtures are the reference's word alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

# Smallest config with the release's latent interface (32 z channels -> 128 at 1/16; GroupNorm needs
# multiples of 32 channels). Channel changes (nin_shortcut) are covered by the live-reference test instead:
# one 64-wide level would double the fixture size.
TINY = dict(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=32)
CASES = {"": (2, 32, 48), "sq_": (1, 48, 48)}  # prefix -> (B, H, W) images; latents are (B, H/16, W/16, 128)


def import_reference(ref_path: Path):
    """The reference's autoencoder module; jaxtyping (annotations only) is stubbed when not installed."""
    root = str(Path(ref_path).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        import jaxtyping  # noqa: F401
    except ImportError:
        stub = types.ModuleType("jaxtyping")
        stub.Float = type("Float", (), {"__class_getitem__": classmethod(lambda cls, item: torch.Tensor)})
        sys.modules["jaxtyping"] = stub
    from flux_rgbd._flux2 import autoencoder

    return autoencoder


def bf16_exact(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).to(torch.float32)


def random_weights(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights for every tensor but `bn.*` (unit fan-in conv kernels, GroupNorm scales near 1)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in module.state_dict().items():
        if name.startswith("bn."):
            continue
        r = torch.randn(t.shape, generator=g)
        if t.ndim == 1:
            r = 1.0 + 0.1 * r if name.endswith("weight") and "norm" in name else 0.05 * r
        else:
            r = r / (t[0].numel() ** 0.5)
        out[name] = bf16_exact(r)
    return out


def bn_stats(channels: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "bn.running_mean": 0.5 * torch.randn(channels, generator=g),
        "bn.running_var": torch.exp(0.7 * torch.randn(channels, generator=g)),  # positive, spread ~[0.1, 8]
        "bn.num_batches_tracked": torch.tensor(12345, dtype=torch.long),
    }


def make(ref_path: Path, out_dir: Path) -> None:
    """Build, run and save the tiny reference autoencoder fixtures under `out_dir`."""
    ae = import_reference(ref_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    enc = ae.Flux2Encoder(**TINY).eval()
    dec = ae.Flux2Decoder(**TINY).eval()
    bn = bn_stats(4 * TINY["z_channels"], seed=3)
    enc_sd = {**random_weights(enc, seed=1), **bn}
    dec_sd = {**random_weights(dec, seed=2), **bn}
    enc.load_state_dict(enc_sd, strict=True)
    dec.load_state_dict(dec_sd, strict=True)

    g = torch.Generator().manual_seed(4)
    io = {}
    with torch.no_grad():
        for prefix, (b, h, w) in CASES.items():
            image = torch.rand(b, h, w, 3, generator=g) * 2.0 - 1.0  # NHWC in [-1, 1], as the reference takes
            latent = torch.randn(b, h // 16, w // 16, 128, generator=g)  # NHWC normalised latent
            io[f"{prefix}enc.image"], io[f"{prefix}enc.latent"] = image, enc(image)
            io[f"{prefix}dec.latent"], io[f"{prefix}dec.image"] = latent, dec(latent)
    io = {k: v.float().contiguous() for k, v in io.items()}

    def stored(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v if k.startswith("bn.") else v.to(torch.bfloat16)).contiguous() for k, v in sd.items()}

    meta = {k: json.dumps(v) for k, v in TINY.items()}
    save_file(stored(enc_sd), out_dir / "ae_tiny_encoder.safetensors", metadata=meta)
    save_file(stored(dec_sd), out_dir / "ae_tiny_decoder.safetensors", metadata=meta)
    save_file(io, out_dir / "ae_io.safetensors", metadata={**meta, "cases": json.dumps(CASES)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="path to a checkout of Duisterhof/modality-forcing")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = ap.parse_args()
    make(Path(args.ref), Path(args.out))
    print(f"wrote autoencoder fixtures to {args.out}")  # noqa: T201 (a script, not library code)


if __name__ == "__main__":
    main()
