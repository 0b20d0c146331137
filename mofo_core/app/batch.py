"""Batch generation from a JSON-lines file: `python -m mofo_core batch jobs.jsonl` (many jobs, many GPUs).

One job a line, a JSON object: {"mode": "joint", "prompt": "a red chair", "seed": 3, "size": [768, 512]} (size
[width, height] or one number; or width / height), and any of steps, cfg, depth_cfg, log2_alpha, refine_depth,
batch, mu, depth_xpred_exact, truncate_prompt; i2d: "image" (+ fit); d2i: "depth" (+ disparity, robust_depth);
"id" optional (default: a hash of the line's content). Paths are relative to the jobs file. Empty lines and
lines starting with # are skipped. Every line (and every input file) is checked before any model loads; a bad
line is one error naming its line number.

Runs on a Ray cluster (the optional extra `batch`: pip install "comfyui-modality-forcing[batch]"), one worker and
one resident model (DiT + text encoder) per GPU, or with --local in this process. Each job is written to its own
run folder under --output-dir as by the other commands (metadata.json records `batch_job`); the workers write
the folders themselves, so on a cluster of several machines --output-dir must be a shared folder.
`batch_state.json` in the output folder records every job (atomic writes): running the same command again skips
finished jobs. A failed job is recorded and retried (up to --retries times) at the end of the queue while the
others go on. Only plain JSON data goes to and from the workers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "batch_state.json"
_NUM, _OPT_NUM = (int, float), (int, float, type(None))
# key: accepted JSON types (bool is refused where a number is meant)
_FIELDS: dict[str, tuple] = {
    "id": (str,), "mode": (str,), "prompt": (str,), "seed": (int,), "steps": (int,), "cfg": _OPT_NUM,
    "depth_cfg": _OPT_NUM, "log2_alpha": _OPT_NUM, "refine_depth": (bool,), "width": (int,), "height": (int,),
    "size": (int, list), "batch": (int,), "mu": _NUM, "depth_xpred_exact": (bool,), "truncate_prompt": (bool,),
    "image": (str,), "depth": (str,), "fit": (str,), "disparity": (bool,), "robust_depth": (bool,),
}
_MODES = ("joint", "i2d", "d2i")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Job:
    id: str
    line: int
    params: dict  # GenerateParams fields
    image: str | None = None  # absolute paths
    depth: str | None = None
    disparity: bool = False

    def label(self) -> str:
        p = self.params
        return f"{self.id} (line {self.line}, {p['mode']}{' ' + repr(p['prompt'][:40]) if p['prompt'] else ''})"


def _job(obj, line: int, base: Path) -> Job:
    """One parsed line -> Job, or ValueError (without the line prefix)."""
    from .pipeline import GenerateParams

    if not isinstance(obj, dict):
        raise ValueError(f"a job is a JSON object {{...}}, got {type(obj).__name__}")
    for k, v in obj.items():
        if k not in _FIELDS:
            raise ValueError(f"unknown key {k!r}; known: {', '.join(sorted(_FIELDS))}")
        if not isinstance(v, _FIELDS[k]) or (isinstance(v, bool) and bool not in _FIELDS[k]):
            raise ValueError(f"{k} must be {' or '.join(t.__name__ for t in _FIELDS[k])}, got {json.dumps(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{k} must be a finite number, got {v}")
    if obj.get("mode") not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {obj.get('mode')!r}")
    kw = {k: v for k, v in obj.items() if k not in ("id", "size", "image", "depth", "disparity")}
    if "size" in obj:
        if "width" in obj or "height" in obj:
            raise ValueError("give size or width / height, not both")
        s = obj["size"]
        wh = [s, s] if isinstance(s, int) else s
        if len(wh) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in wh):
            raise ValueError(f"size must be one number or [width, height], got {json.dumps(s)}")
        kw["width"], kw["height"] = wh
    need = {"i2d": "image", "d2i": "depth"}.get(obj["mode"])
    for key in ("image", "depth"):
        if (key in obj) != (key == need):
            raise ValueError(f"mode {obj['mode']} {'needs' if key == need else 'takes no'} {key!r}")
    params = GenerateParams(**kw)
    paths, shape = {}, None
    if need:
        path = (base / obj[need]).resolve()
        if not path.is_file():
            raise ValueError(f"{need} file {path} does not exist")
        paths[need] = str(path)
        shape = _check_input(need, path, params, obj.get("disparity", False))
    params.resolved(shape).validate()
    fields = asdict(params)
    job_id = obj.get("id") or hashlib.sha1(json.dumps([fields, paths], sort_keys=True).encode()).hexdigest()[:12]
    if not _ID.fullmatch(job_id):
        raise ValueError(f"id {job_id!r}: use 1-64 letters, digits, '_', '.', '-' (it names the job in the state)")
    return Job(job_id, line, fields, disparity=bool(obj.get("disparity", False)), **paths)


def _check_input(kind: str, path: Path, params, disparity: bool):
    """Load the input once (then drop it): a broken file fails here, before any model loads. Returns d2i's shape."""
    if kind == "image":
        from .images import load_image

        load_image(path)
        return None
    from ..depth.codec import check_depth_map
    from ..depth.files import load_depth

    d = load_depth(path, disparity=disparity, nan_ok=params.robust_depth)
    check_depth_map(d, robust=params.robust_depth)
    return d.shape


def load_jobs(path: str | Path) -> list[Job]:
    """Every job of a JSON-lines file, all checked; the first bad line raises ValueError naming its number."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"jobs file {path} does not exist")
    jobs, seen = [], {}
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            job = _job(json.loads(text), n, path.parent)
        except (ValueError, FileNotFoundError) as e:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path}, line {n}: {e}") from e
        if job.id in seen:
            raise ValueError(f"{path}, line {n}: job id {job.id} is also line {seen[job.id]}'s (the same job twice?); "
                             "give one of them another id or seed")
        seen[job.id] = n
        jobs.append(job)
    if not jobs:
        raise ValueError(f"jobs file {path} holds no job (one JSON object a line)")
    return jobs


@dataclass
class BatchState:
    """batch_state.json: {"version": 1, "jobs": {id: {"line", "status", "attempts", "run_dir", "seconds", ...}}}."""

    path: Path
    jobs: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, output_dir: Path) -> BatchState:
        path = output_dir / STATE_FILE
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = None
        if not (isinstance(data, dict) and data.get("version") == 1 and isinstance(data.get("jobs"), dict)):
            raise ValueError(f"{path} is not a batch state file this version wrote; move it away")
        return cls(path, data["jobs"])

    def done(self, job_id: str) -> bool:
        rec = self.jobs.get(job_id, {})
        return rec.get("status") == "done" and Path(rec.get("run_dir", "")).is_dir()

    def update(self, job: Job, **rec) -> None:
        self.jobs.setdefault(job.id, {"line": job.line, "mode": job.params["mode"]}).update(rec)
        self.save()

    def save(self) -> None:
        from ..atomic import atomic_path

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({"version": 1, "jobs": self.jobs}, indent=1), encoding="utf-8")


class BatchWorker:
    """One resident pipeline (DiT and text encoder kept loaded) that runs jobs and writes their run folders.

    The models load in `ready()` (or the first `run`), not in __init__: a load error then reaches the caller as
    itself (e.g. WeightsNotFoundError), not as a dead Ray actor."""

    def __init__(self, opts: dict):
        self.opts, self.pipe = opts, None

    def ready(self) -> str:
        """Load the models (once); returns this worker's name, host/device/pid."""
        if self.pipe is None:
            import torch

            from .pipeline import MofoPipeline

            o = self.opts
            dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16, "fp8": torch.bfloat16}
            self.pipe = MofoPipeline.from_pretrained(
                o["model"], text_encoder=o["text_encoder"], offline=o.get("offline") or None, device=o.get("device"),
                dtype=dtype[o.get("dtype", "bf16")], keep_text_encoder=True, attention=o.get("attention", "auto"),
                compile=o.get("compile", False), fp8="row" if o.get("dtype") == "fp8" else None,
            )
            self.pipe.dit  # noqa: B018 -- loaded now: resident for every job, and a bad file fails at start
        return f"{socket.gethostname()}/{self.pipe.device}/pid{os.getpid()}"

    def run(self, job: dict) -> dict:
        from .outputs import save_run
        from .pipeline import GenerateParams

        t0 = time.perf_counter()
        name = self.ready()
        image = depth = None
        if job.get("image"):
            from .images import load_image

            image = load_image(job["image"])
        if job.get("depth"):
            from ..depth.files import load_depth

            depth = load_depth(job["depth"], disparity=job["disparity"], nan_ok=job["params"]["robust_depth"])
        result = self.pipe.generate(GenerateParams(**job["params"]), image=image, depth=depth)
        result.metadata["batch_job"] = job["id"]
        o = self.opts
        out = save_run(o["output_dir"], result, fov_deg=o.get("fov_deg", 65.0), edge_rtol=o.get("edge_rtol", 0.04),
                       exr=o.get("exr", True))
        return {"run_dir": str(out["run_dir"]), "seconds": round(time.perf_counter() - t0, 3), "worker": name}


def _error_text(e: BaseException, *, whole: bool = False) -> str:
    cause = getattr(e, "cause", None) or e  # Ray's RayTaskError carries the worker's exception as .cause
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text[:2000] if whole else (text.splitlines() or [''])[0][:300]}"


class _Queue:
    """The jobs still to run (retries go to the end), the state file and the progress lines."""

    def __init__(self, jobs: list[Job], state: BatchState, retries: int, say: Callable[[str], None]):
        self.state, self.retries, self.say = state, retries, say
        self.total = len(jobs)
        self.skipped = [j for j in jobs if state.done(j.id)]
        self.todo = deque(j for j in jobs if not state.done(j.id))
        self.tries: dict[str, int] = {}
        self.done, self.failed = len(self.skipped), []
        if self.skipped:
            say(f"{len(self.skipped)} of {self.total} jobs already done in {state.path.parent}: skipped")

    def take(self) -> Job | None:
        if not self.todo:
            return None
        job = self.todo.popleft()
        self.tries[job.id] = self.tries.get(job.id, 0) + 1
        self.state.update(job, status="running", attempt=self.tries[job.id])
        return job

    def finished(self, job: Job, out: dict) -> None:
        self.done += 1
        self.state.update(job, status="done", error=None, **out)
        self.say(f"[{self.done}/{self.total}] {job.label()}: done in {out['seconds']:.1f} s on {out['worker']} "
                 f"-> {out['run_dir']}")

    def error(self, job: Job, e: BaseException) -> None:
        text, tries = _error_text(e), self.tries[job.id]
        errors = (self.state.jobs.get(job.id, {}).get("errors") or [])[-4:] + [text]
        if tries <= self.retries:
            self.todo.append(job)
            self.state.update(job, status="retrying", error=text, errors=errors)
            self.say(f"{job.label()}: failed (try {tries} of {self.retries + 1}), retried later: {text}")
        else:
            self.failed.append(job)
            self.state.update(job, status="failed", error=text, errors=errors)
            self.say(f"{job.label()}: FAILED after {tries} tries: {text}")


def run_local(jobs: list[Job], opts: dict, queue: _Queue) -> None:
    worker = BatchWorker(opts)
    queue.say(f"1 worker: {worker.ready()}")
    while (job := queue.take()) is not None:
        try:
            queue.finished(job, worker.run(asdict(job)))
        except Exception as e:  # recorded and retried; KeyboardInterrupt still stops the batch
            queue.error(job, e)


def run_ray(jobs: list[Job], opts: dict, queue: _Queue, *, address: str | None, cpu_workers: int | None) -> None:
    try:
        import ray
    except ImportError as e:
        from ..depth.files import MissingDependencyError

        raise MissingDependencyError(
            'batch runs on Ray, which is not installed: pip install "comfyui-modality-forcing[batch]" (or run one '
            "GPU in this process with --local)") from e
    env = None
    if address is None:  # a cluster on this machine: its workers import the same mofo_core as this process
        root = str(Path(__file__).resolve().parents[1])
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}}
    ray.init(address=address, runtime_env=env, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if cpu_workers:
            n, res, device = cpu_workers, {"num_cpus": 1}, "cpu"
        elif gpus:
            n, res, device = gpus, {"num_gpus": 1}, "cuda"
        else:
            raise ValueError("the Ray cluster has no GPU; give --cpu-workers N to run on CPUs (tiny test models only)")
        actor = ray.remote(BatchWorker).options(max_restarts=2, **res)
        workers = [actor.remote({**opts, "device": device}) for _ in range(n)]
        try:
            names = ray.get([w.ready.remote() for w in workers])
        except ray.exceptions.RayError as e:
            raise ValueError(f"a batch worker could not load the model: {_error_text(e, whole=True)}") from e
        queue.say(f"{n} workers: {', '.join(names)}")
        running: dict = {}  # ObjectRef -> (worker, job)
        idle = list(workers)
        while True:
            while idle and (job := queue.take()) is not None:
                w = idle.pop()
                running[w.run.remote(asdict(job))] = (w, job)
            if not running:
                break
            (ref,), _ = ray.wait(list(running), num_returns=1)
            w, job = running.pop(ref)
            idle.append(w)
            try:
                queue.finished(job, ray.get(ref))
            except ray.exceptions.RayError as e:  # the job raised, or its worker died (Ray restarts it)
                queue.error(job, e)
    finally:
        ray.shutdown()


def run_batch(a, say: Callable[[str], None] = log.info) -> int:
    """The `batch` command; returns the exit status (0: every job done, 1: some failed)."""
    from .outputs import check_output_dir

    if a.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {a.retries}")
    if a.cpu_workers is not None and a.cpu_workers < 1:
        raise ValueError(f"--cpu-workers must be >= 1, got {a.cpu_workers}")
    if a.local and (a.cpu_workers or a.address):
        raise ValueError("--local runs in this process: drop --cpu-workers / --address (or drop --local for Ray)")
    if not a.local and a.device:
        raise ValueError("--device is for --local; Ray workers get one GPU each (or --cpu-workers N: one CPU each)")
    jobs = load_jobs(a.jobs)  # every line checked before anything loads
    out = check_output_dir(a.output_dir)  # created at the first job (a worker that cannot load writes nothing)
    state = BatchState.open(out)
    queue = _Queue(jobs, state, a.retries, say)
    opts = dict(model=a.model, text_encoder=a.text_encoder, offline=a.offline, dtype=a.dtype, attention=a.attention,
                compile=a.compile, output_dir=str(out.resolve()), fov_deg=a.fov_deg, edge_rtol=a.edge_rtol,
                exr=not a.no_exr, device=a.device)
    if queue.todo:
        if a.local:
            run_local(jobs, opts, queue)
        else:
            run_ray(jobs, opts, queue, address=a.address, cpu_workers=a.cpu_workers)
    say(f"batch: {queue.done} of {queue.total} jobs done ({len(queue.skipped)} earlier), {len(queue.failed)} failed; "
        f"state in {state.path}")
    if queue.failed:
        say("failed: " + ", ".join(j.label() for j in queue.failed) + "; run the same command again to retry them")
    return 1 if queue.failed else 0


def add_parser(sub) -> argparse.ArgumentParser:
    from .cli import DTYPES, _Help

    b = sub.add_parser("batch", formatter_class=_Help, help="many jobs from a JSON-lines file, over every GPU of a "
                       "Ray cluster (or --local); resumable",
                       description="Exit status: 0 every job done, 1 some jobs failed (recorded in batch_state.json; "
                       "run the same command again to retry them), 2 bad input (nothing run).")
    b.add_argument("jobs", help="JSON-lines file, one job a line: "
                   '{"mode": "joint", "prompt": "...", "seed": 1, "size": [768, 512]} (see mofo_core/app/batch.py)')
    b.add_argument("--output-dir", default="./outputs", help="one run folder per job here, and batch_state.json")
    b.add_argument("--model", default="bartduis/modality_forcing", help="release folder or repo id (on every worker)")
    b.add_argument("--text-encoder", default="Qwen/Qwen3-8B", help="Qwen3-8B folder or repo id")
    b.add_argument("--offline", action="store_true", help="never download")
    b.add_argument("--dtype", choices=DTYPES, default="bf16", help="DiT body dtype (fp8: row-scaled e4m3 blocks)")
    b.add_argument("--attention", choices=("auto", "sdpa", "flash", "cudnn", "efficient"), default="auto",
                   help="attention kernel")
    b.add_argument("--compile", action="store_true", help="torch.compile the DiT blocks on every worker")
    b.add_argument("--retries", type=int, default=2, help="tries after the first for a failed job")
    b.add_argument("--address", default=None, help="Ray cluster address (default: this machine's, started if none)")
    b.add_argument("--cpu-workers", type=int, default=None,
                   help="CPU workers instead of one per GPU (tests with tiny models; the real model is far too slow)")
    b.add_argument("--local", action="store_true", help="no Ray: run the jobs one after the other in this process")
    b.add_argument("--device", default=None, help="with --local: the device (default cuda if available)")
    b.add_argument("--fov-deg", type=float, default=65.0, help="horizontal field of view for the point clouds")
    b.add_argument("--edge-rtol", type=float, default=0.04, help="drop depth-edge pixels (0 disables)")
    b.add_argument("--no-exr", action="store_true", help="skip depth.exr")
    b.add_argument("--verbose", action="store_true", help="log what loads and where")
    return b


__all__ = ["BatchState", "BatchWorker", "Job", "add_parser", "load_jobs", "run_batch"]
