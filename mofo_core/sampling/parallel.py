"""CFG-parallel (and data-parallel) denoising: one model replica per device, one forward's batch split across them.

`sample` runs cond and uncond as one forward of batch 2B (`batch_cfg=True`); `ParallelDenoiser.predict` splits that
batch into one contiguous part per replica (cond on the first device, uncond on the second), runs the parts at
the same time (the first in the calling thread, the others in one worker thread per device: PyTorch releases
the GIL inside its kernels) and concatenates the outputs on the first device. `sample` then combines cond and
uncond exactly as on one device. Every sample of a forward is independent of the others in the batch (no
batch statistics anywhere in the DiT), so the result is the one-device result up to the rounding of
batch-size-dependent matrix kernels (bit-identical to `batch_cfg=False` on one CPU; ~1e-6 relative in fp32).

A forward of batch 1 (cfg 1, e.g. image -> depth at batch 1) has nothing to split: it runs on the first device
alone. With cfg 1 and batch >= 2 the images themselves are split (data-parallel).

CUDA: the worker threads use each device's default stream, as the calling thread does; PyTorch orders a copy
between two devices after the work already queued on both devices' current streams, so no explicit
synchronisation is needed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _indexed(d: torch.device) -> torch.device:
    return torch.device("cuda", d.index or 0) if d.type == "cuda" else d


def check_devices(
    devices: Sequence[str | torch.device], *, main: str | torch.device | None = None, lowvram: bool = False
) -> list[torch.device]:
    """The devices of a multi-device run, refused at once when this machine does not have them; `main` (the
    pipeline's `device`), when given, must be the first."""
    if lowvram:
        raise ValueError("lowvram runs cond and uncond one after the other on one device; several devices run them "
                         "at the same time: use one or the other (CLI: --lowvram or --gpus)")
    devs = [torch.device(d) for d in devices]
    if not devs:
        raise ValueError("devices is empty; give at least one device (e.g. ['cuda:0', 'cuda:1'])")
    cuda = [d for d in devs if d.type == "cuda"]
    if cuda:
        n = torch.cuda.device_count()
        need = max((d.index or 0) for d in cuda) + 1
        if n < need:
            raise ValueError(
                f"{len(devs)} devices {[str(d) for d in devs]} were asked for but this machine has {n} CUDA GPU(s) "
                "that this PyTorch can use; use fewer GPUs (CLI: --gpus 1)"
            )
        devs = [_indexed(d) for d in devs]
        if len({str(d) for d in cuda}) != len(cuda):
            raise ValueError(f"devices {[str(d) for d in devs]} name one GPU twice; give each GPU once")
    if main is not None and _indexed(torch.device(main)) != devs[0]:
        raise ValueError(f"device {main} is not the first of devices {[str(d) for d in devs]}; leave device unset "
                         "(the first of devices is the main device)")
    return devs


class ParallelDenoiser:
    """A `Denoiser` (`mofo_core.sampling.sampler`) over replicas of one DiT, one per device; the first is the primary.

    The replicas must hold the same weights (the caller loads them; `MofoPipeline(devices=...)` does). Inputs may
    live anywhere; outputs are on the primary's device. `close()` (or leaving a `with` block) stops the worker
    threads; a later split forward starts them again.
    """

    def __init__(self, replicas: Sequence[torch.nn.Module]):
        if len(replicas) < 1:
            raise ValueError("ParallelDenoiser needs at least one model")
        first = replicas[0]
        for r in replicas[1:]:
            if (r.in_channels, r.depth_channels) != (first.in_channels, first.depth_channels):
                raise ValueError("the replicas are not the same model (their channel counts differ)")
        self.replicas = list(replicas)
        self.devices = [_device_of(r) for r in self.replicas]
        self.in_channels, self.depth_channels = first.in_channels, first.depth_channels
        self._pool: ThreadPoolExecutor | None = None  # started at the first split forward

    # the rest of the DiT's interface (config, dtype, ...) is the primary's
    def __getattr__(self, name):
        if name in ("replicas", "devices", "_pool"):  # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.replicas[0], name)

    @torch.no_grad()
    def predict(
        self, rgb: Tensor, depth: Tensor, ctx: Tensor, t_rgb: Tensor, t_depth: Tensor, height: int, width: int
    ) -> tuple[Tensor, Tensor]:
        b = rgb.shape[0]
        k = min(len(self.replicas), b)
        primary = self.devices[0]
        if k == 1:
            return self.replicas[0].predict(
                *(x.to(primary) for x in (rgb, depth, ctx, t_rgb, t_depth)), height, width
            )
        # (B, ...) -> k contiguous parts along the batch: with B = 2b' from batch_cfg, part 0 = cond, part 1 = uncond
        parts = [x.tensor_split(k) for x in (rgb, depth, ctx, t_rgb, t_depth)]
        jobs = [tuple(p[i] for p in parts) for i in range(k)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(self.replicas) - 1, thread_name_prefix="mofo-parallel")
        futures = [self._pool.submit(self._run, i, jobs[i], height, width) for i in range(1, k)]
        try:
            first = self._run(0, jobs[0], height, width)
        finally:
            wait(futures)  # no forward is left running when this returns or raises
        outs = [first] + [f.result() for f in futures]  # a worker's exception is raised here
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])  # (B, N, 128), (B, N, 256)

    def _run(self, i: int, args: tuple[Tensor, ...], height: int, width: int) -> tuple[Tensor, Tensor]:
        dev = self.devices[i]
        guard = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
        with torch.no_grad(), guard:  # grad mode is per thread: the worker threads need it set too
            r, d = self.replicas[i].predict(*(x.to(dev) for x in args), height, width)
            return r.to(self.devices[0]), d.to(self.devices[0])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> ParallelDenoiser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ParallelDenoiser", "check_devices"]
