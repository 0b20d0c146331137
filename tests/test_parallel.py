"""CFG-parallel sampling on CPU: two replicas on "cpu" (the same device twice) give the one-device result."""

from __future__ import annotations

import pytest
import torch
from helpers import rel_l2

import mofo_core as mc
from mofo_core.app.cli import main
from mofo_core.app.demo import ensure_demo_assets
from mofo_core.sampling.parallel import ParallelDenoiser, check_devices

CTX = 24


def _dit():
    return mc.build_dit(mc.tiny("flux_rgbd_9b_v2", context_in_dim=CTX), seed=1)


class Counting:
    """A replica that records the batch size of every forward."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def predict(self, rgb, *args):
        self.batches.append(rgb.shape[0])
        return self.model.predict(rgb, *args)


def _run(model, batch=1, cfg=4.0, **kw):
    g = torch.Generator().manual_seed(5)
    ctx, null = torch.randn(batch, 7, CTX, generator=g), torch.randn(1, 7, CTX, generator=g)
    rs, ds = mc.schedule(4, mode="joint")
    return mc.sample(model, ctx, null, rs, ds, height=3, width=4, cfg=cfg, seed=11, **kw)


@pytest.mark.parametrize("batch", [1, 3])
def test_cfg_parallel_equals_one_device(batch):
    a, b = Counting(_dit()), Counting(_dit())
    with ParallelDenoiser([a, b]) as par:
        rgb, dep = _run(par, batch)
    assert a.batches == b.batches == [batch] * 4  # cond on the first replica, uncond on the second, every step
    # the same per-forward shapes as two sequential forwards on one device: bit-identical
    ref_rgb, ref_dep = _run(_dit(), batch, batch_cfg=False)
    assert torch.equal(rgb, ref_rgb) and torch.equal(dep, ref_dep)
    # the batched (2B) forward rounds its matrix products differently: fp32 agreement to ~1e-6
    bat_rgb, bat_dep = _run(_dit(), batch)
    assert rel_l2(rgb, bat_rgb) < 1e-5 and rel_l2(dep, bat_dep) < 1e-5


def test_cfg_1_batch_1_runs_on_the_first_replica_alone_and_batch_2_is_split():
    a, b = Counting(_dit()), Counting(_dit())
    with ParallelDenoiser([a, b]) as par:
        one = _run(par, 1, cfg=1.0)
        assert b.batches == [] and a.batches == [1] * 4
        two = _run(par, 2, cfg=1.0)  # no guidance, two images: one image per replica
        assert b.batches == [1] * 4
    assert all(torch.equal(x, y) for x, y in zip(one, _run(_dit(), 1, cfg=1.0)))
    assert all(rel_l2(x, y) < 1e-5 for x, y in zip(two, _run(_dit(), 2, cfg=1.0)))


def test_worker_thread_runs_without_autograd_and_errors_reach_the_caller():
    dit = _dit()

    class Broken:
        in_channels, depth_channels = dit.in_channels, dit.depth_channels

        def parameters(self):
            return dit.parameters()

        def predict(self, *args):
            raise RuntimeError("a replica is out of memory")

    seen = {}

    class Spy(Counting):
        def predict(self, rgb, *args):
            out = super().predict(rgb, *args)
            seen["grad"], seen["graph"] = torch.is_grad_enabled(), out[0].requires_grad
            return out

    # weights that want gradients: a worker thread that forgot no_grad would build a graph (and keep activations)
    with ParallelDenoiser([dit, Spy(_dit().requires_grad_(True))]) as par:
        _run(par, 1)
    assert seen == {"grad": False, "graph": False}
    with ParallelDenoiser([dit, Broken()]) as par, pytest.raises(RuntimeError, match="out of memory"):
        _run(par, 1)
    other = Counting(_dit())
    with ParallelDenoiser([Broken(), other]) as par, pytest.raises(RuntimeError, match="out of memory"):
        _run(par, 1)  # the first replica fails: its error, after the other one's forward has finished
    assert other.batches == [1]


def test_missing_gpus_and_conflicting_options_are_clear_errors():
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="--gpus 1"):
            check_devices(["cuda:0", "cuda:1"])
    with pytest.raises(ValueError, match="lowvram"):
        check_devices(["cpu", "cpu"], lowvram=True)
    with pytest.raises(ValueError, match="first of devices"):
        check_devices(["cpu", "cpu"], main="cuda:1")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    model, text = ensure_demo_assets(tmp_path_factory.mktemp("cache"))
    return str(model), str(text)


def test_pipeline_on_two_devices_matches_one_device(assets):
    from mofo_core.app.pipeline import GenerateParams, MofoPipeline

    model, text = assets

    def pipe(**kw):
        return MofoPipeline.from_pretrained(model, text_encoder=text, offline=True, dtype=torch.float32, **kw)

    one, two = pipe(device="cpu"), pipe(devices=["cpu", "cpu"])
    i2d = GenerateParams(mode="i2d", steps=2, height=32, width=32, seed=2)
    image = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    r2 = two.generate(i2d, image=image)
    assert two._parallel is None  # cfg 1, batch 1: the replica was never loaded
    assert (r2.depth == one.generate(i2d, image=image).depth).all()
    joint = GenerateParams(mode="joint", prompt="a red chair", steps=3, height=32, width=48, seed=4)
    a, b = one.generate(joint), two.generate(joint)
    assert two._parallel is not None and len(two._parallel.replicas) == 2
    assert rel_l2(b.depth_tokens, a.depth_tokens) < 1e-5 and rel_l2(b.rgb_latent, a.rgb_latent) < 1e-5
    assert b.metadata["devices"] == ["cpu", "cpu"] and a.metadata["devices"] is None
    two._parallel.close()


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has 2 CUDA GPUs")
def test_cli_gpus_2_without_two_gpus_is_one_error_and_writes_nothing(assets, tmp_path, capsys):
    model, text = assets
    code = main(["joint", "--prompt", "a chair", "--model", model, "--text-encoder", text, "--offline", "--gpus", "2",
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "--gpus 2" in err and "CUDA GPU" in err
    assert not (tmp_path / "out").exists()
    assert main(["i2d", "--image", "x.png", "--gpus", "0", "--output-dir", str(tmp_path / "out")]) == 2
    assert "--gpus must be at least 1" in capsys.readouterr().err
