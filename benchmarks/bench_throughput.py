"""Throughput of bone-age assessment, from the model's bound to the whole service (issue 10).

    .venv/bin/python benchmarks/bench_throughput.py --model bench-out/real-quick/model.pt \
        [--parts model,stages,cpu,naive,e2e,web] [--modes embedded,services] [--studies 200]

Prints, on full-resolution studies (real RSNA sample films upscaled to about 2,000 x 2,500
and re-encoded as PNG, alternately 8- and 16-bit, written once to --images-dir under /tmp):

- model   the model bound: forward passes as the recipe needs them (flip TTA: two per
          study) at batch 1 and 16, in studies/s;
- precision  held-out MAE and speed of each autocast dtype / channels-last / batch norm
          folded into the convolutions (training/fusion.py, as the Predictor runs it) on this
          device (not in the default parts: --parts precision);
- stages  each stage per study: decode (the full float decode, and the working copy at
          submission when the code has one), preprocessing, prediction, Grad-CAM (one
          pass from the head; and pytorch-grad-cam over the whole network, for scale),
          overlay, and Predictor.predict with and without Grad-CAM at batch 1 and 16;
- cpu     CPU time per study (time.process_time: load-independent) of each process, in this
          one process: the web's POST /api/v1/assessments (Flask test client, embedded), the
          worker's run_assessment in batches, and a status poll, with each step's share
          (not in the default parts: --parts cpu; --cpu-studies, --cpu-batch);
- naive   a naive baseline in one process: the model loaded for every study, the full
          decode, batch 1, Grad-CAM over the whole network;
- e2e     end to end through the real service, per mode (embedded: SQLite and the
          filesystem queue; services: a private PostgreSQL and Redis): gunicorn and one
          Celery worker (`boneage worker`), N studies submitted over the API by concurrent
          clients; assessments/s, p50/p95 latency from the client's submit to the stored
          result, and the ratio to the model bound; plus the database writes per study;
- web     the web tier alone (gunicorn on loopback, no worker): locust headless with 32
          status pollers (one poll a second each) and submitters sending full-resolution
          uploads; submissions/s and the poll latency p50/p95/p99.

The machine is stated with its load average before and after each part; the numbers
depend on what else runs. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import io
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402

DEFAULT_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "rsna-sample"
DEFAULT_IMAGES_DIR = Path(tempfile.gettempdir()) / "boneage-bench-fullres"
ROUNDS = 3  # alternating runs of Predictor.predict with and without Grad-CAM
FULL_SIDE = 2500  # longest side of the upscaled films (RSNA full size: about 2,000 x 2,500)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads; Python {platform.python_version()}")


# ------------------------------------------------------------------ the studies


def full_resolution_studies(sample: Path, count: int, out_dir: Path) -> list[Path]:
    """`count` real sample films upscaled so the longest side is FULL_SIDE, as PNG: even
    ones 8-bit, odd ones 16-bit. Made once; kept in out_dir (outside the repository)."""
    from PIL import Image

    sources = sorted((sample / "boneage-training-dataset").glob("*.png"))
    if not sources:
        raise SystemExit(f"no RSNA sample at {sample} (expected boneage-training-dataset/*.png)")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        bits = 8 if i % 2 == 0 else 16
        path = out_dir / f"{i:04d}-{source.stem}-{bits}bit.png"
        if not path.is_file():
            image = Image.open(source).convert("F")
            scale = FULL_SIDE / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            pixels = np.asarray(image.resize(size, Image.Resampling.BICUBIC)) / 255.0
            pixels = np.clip(pixels, 0.0, 1.0)
            if bits == 8:
                picture = Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L")
            else:
                picture = Image.fromarray(np.round(pixels * 65535).astype(np.uint16))
            tmp = path.with_suffix(".tmp")
            picture.save(tmp, format="PNG")
            tmp.rename(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------ timing helpers


def per_item_ms(function, items: int, repeat: int = 1) -> float:
    """Wall milliseconds per item of `function()` over `repeat` runs (after one warm-up)."""
    function()
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return 1000 * (time.perf_counter() - started) / (repeat * items)


@dataclass
class Results:
    lines: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


# ------------------------------------------------------------------ model bound


def model_bound(predictor, results: Results, seconds: float = 6.0) -> float:
    """Studies/s the forward passes allow at batch 16 (printed for 1 and 16)."""
    import torch

    from training.augment import hflip, to_float

    size = predictor.recipe.image_size
    passes = 2 if predictor.recipe.tta else 1
    rng = np.random.default_rng(0)
    results.say(f"model bound: {predictor.model_version}, {size} px, {passes} forward pass(es) per study "
                f"(flip TTA {predictor.recipe.tta}), precision {predictor.precision.dtype}, "
                f"channels-last {predictor.precision.channels_last}, device {predictor.device}")
    results.say(f"| batch | forward passes/s | studies/s | ms per study |")
    results.say(f"|---:|---:|---:|---:|")
    best = 0.0
    for batch in (1, 16):
        x = predictor.precision.layout(to_float(torch.from_numpy(
            rng.integers(0, 255, (batch, size, size), dtype=np.uint8))).to(predictor.device))
        m = torch.ones(batch, device=predictor.device)

        def run():
            with torch.inference_mode(), predictor.precision.autocast(predictor.device):
                predictor.model(x, m)
                if passes == 2:
                    predictor.model(hflip(x), m)
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()

        run()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds or done < 3:
            run()
            done += 1
        elapsed = time.perf_counter() - started
        studies = done * batch / elapsed
        best = max(best, studies)
        results.say(f"| {batch} | {studies * passes:.1f} | {studies:.1f} | {1000 / studies:.1f} |")
        results.numbers[f"model_bound_batch{batch}"] = studies
    results.numbers["model_bound"] = best
    return best


# ------------------------------------------------------------------ precision


def precision_choices(model_path: Path, sample: Path, results: Results, device) -> None:
    """Held-out MAE (the model's test split of the sample) and forward speed at batch 16 for
    each autocast dtype, memory layout and batch-norm folding on this device; kept only
    within 0.1 months. The folded and unfolded model of one setting are timed in
    alternating rounds, so a change in the machine's load falls on both."""
    import torch

    from gpu_check import held_out_split
    from training.augment import hflip, to_float
    from training.fusion import fold_batchnorm
    from training.inference import predict_months
    from training.precision import Precision

    model, recipe, squares, male, ages = held_out_split(model_path, sample, quick=False)
    model = model.to(device).eval()
    variants = {False: model, True: fold_batchnorm(model)}
    results.say(f"precision on {device} ({len(ages)} held-out films of the sample; speed: forward passes with TTA, "
                "batch 16, median of 5 alternating rounds):")
    results.say("| autocast | channels-last | batch norm folded | held-out MAE (months) | Δ vs fp32 | largest change "
                "of one study's prediction (months) | studies/s | verdict |")
    results.say("|---|---|---|---:|---:|---:|---:|---|")
    reference = reference_predictions = None
    # float16 on a CPU without float16 units is emulated, and far slower than float32
    dtypes = ("fp32", "bf16", "fp16") if device.type == "cuda" or torch.cpu._is_amx_fp16_supported() else ("fp32", "bf16")
    x16 = to_float(torch.from_numpy(squares[:16])).to(device)
    m16 = torch.from_numpy(male[:16]).to(device)
    for dtype in dtypes:
        for channels_last in (False, True):
            precision = Precision(dtype, channels_last)
            rows = {}
            for folded, variant in variants.items():
                variant.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
                try:
                    rows[folded] = predict_months(variant, squares, male, tta=recipe.tta, device=device,
                                                  precision=precision)
                except RuntimeError as exc:
                    results.say(f"| {dtype} | {channels_last} | {folded} | not supported: {str(exc)[:80]} | | | | |")
            if not rows:
                continue
            x = precision.layout(x16)

            def run(variant):
                with torch.inference_mode(), precision.autocast(device):
                    variant(x, m16)
                    variant(hflip(x), m16)

            rounds = {folded: [] for folded in rows}
            for _ in range(5):
                for folded in rows:
                    rounds[folded].append(per_item_ms(lambda: run(variants[folded]), 16, repeat=2))
            for folded, predicted in rows.items():
                mae = float(np.mean(np.abs(predicted - ages)))
                reference = mae if reference is None else reference
                reference_predictions = predicted if reference_predictions is None else reference_predictions
                largest_change = float(np.max(np.abs(predicted - reference_predictions)))
                per_study = statistics.median(rounds[folded])
                within = abs(mae - reference) <= 0.1
                results.numbers[f"precision:{dtype}:{int(channels_last)}:{int(folded)}"] = dict(
                    mae=mae, studies_per_s=1000 / per_study, largest_change=largest_change)
                results.say(f"| {dtype} | {channels_last} | {folded} | {mae:.3f} | {mae - reference:+.3f} "
                            f"| {largest_change:.3f} | {1000 / per_study:.1f} "
                            f"| {'within 0.1' if within else 'MAE moved: drop'} |")


# ------------------------------------------------------------------ stages


def stages(predictor, studies: list[Path], results: Results, count: int = 16) -> None:
    import torch

    from core.imageio import decode_image
    from training.gradcam import GradCamExplainer, overlay_png

    paths = studies[:count]
    blobs = [p.read_bytes() for p in paths]
    sexes = list(itertools.islice(itertools.cycle("MF"), len(paths)))
    male = np.array([s == "M" for s in sexes], dtype=np.float32)
    rows: list[tuple[str, str, float]] = []

    def row(stage: str, note: str, ms: float) -> None:
        rows.append((stage, note, ms))
        results.numbers[f"stage_ms:{stage}:{note}"] = ms

    def timed_each(function, items):
        started = time.perf_counter()
        out = [function(item) for item in items]
        return out, 1000 * (time.perf_counter() - started) / len(items)

    images, ms = timed_each(decode_image, blobs)
    row("decode", "decode_image: full-size float32", ms)
    working = None
    with contextlib.suppress(ImportError):
        from core.working_image import make_working_image

        made, ms = timed_each(make_working_image, blobs)
        row("decode", "working copy at submission (make_working_image, ≤1024 px)", ms)
        working = [w.as_float() for w in made]
        _, ms = timed_each(lambda w: w.png(), made)
        row("decode", "working copy PNG encode (stored once)", ms)
    squares, ms = timed_each(lambda image: predictor.preprocess([image])[0], images)
    row("preprocessing", "from the full-size float", ms)
    if working is not None:
        _, ms = timed_each(lambda image: predictor.preprocess([image])[0], working)
        row("preprocessing", "from the working copy", ms)
    squares = np.stack(squares)
    for batch in (1, 16):
        chunks = [(squares[i : i + batch], male[i : i + batch]) for i in range(0, len(squares), batch)]

        def forward_all():
            return [predictor.forward(s, m) for s, m in chunks]

        row("prediction", f"forward with TTA, batch {batch}", per_item_ms(forward_all, len(squares)))
        passes = forward_all()
        row("Grad-CAM", f"one pass from the head, batch {batch}", per_item_ms(
            lambda: [predictor.explainer.heatmaps(f.feature_maps, m, squares.shape[-1])
                     for f, (_, m) in zip(passes, chunks)], len(squares)))
        full = GradCamExplainer(predictor.model)
        row("Grad-CAM", f"pytorch-grad-cam over the whole network, batch {batch}", per_item_ms(
            lambda: [full.heatmaps(s, m) for s, m in chunks], len(squares)))
    maps = predictor.explainer.heatmaps(predictor.forward(squares, male).feature_maps, male, squares.shape[-1])
    _, ms = timed_each(lambda i: overlay_png(squares[i], maps[i]), range(len(squares)))
    row("overlay", "overlay_png (jet over the square, PNG)", ms)
    source = working if working is not None else images
    for batch in (1, 16):
        # on and off alternate, ROUNDS times, and the medians are compared: on a shared
        # machine a load spike during one of them would otherwise decide the ratio
        timings: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(ROUNDS):
            for gradcam in (False, True):
                def predict_all():
                    for i in range(0, len(source), batch):
                        predictor.predict(source[i : i + batch], sexes[i : i + batch], gradcam=gradcam)

                timings[gradcam].append(per_item_ms(predict_all, len(source)))
        for gradcam in (False, True):
            ms = statistics.median(timings[gradcam])
            row("Predictor.predict", f"batch {batch}, Grad-CAM {'on' if gradcam else 'off'} "
                f"(preprocessing + forward{' + map + overlay' if gradcam else ''}; median of {ROUNDS} alternating runs)", ms)
            results.numbers[f"predict_per_s_batch{batch}_gradcam{int(gradcam)}"] = 1000 / ms
    for batch in (1, 16):
        on = results.numbers[f"predict_per_s_batch{batch}_gradcam1"]
        off = results.numbers[f"predict_per_s_batch{batch}_gradcam0"]
        results.numbers[f"gradcam_ratio_batch{batch}"] = on / off
    results.say(f"stages, per study ({len(paths)} full-resolution PNGs, {paths[0].name} ...; "
                f"{torch.get_num_threads()} torch threads):")
    results.say("| stage | how | ms per study |")
    results.say("|---|---|---:|")
    for stage, note, ms in rows:
        results.say(f"| {stage} | {note} | {ms:.1f} |")
    results.say(f"Predictor.predict with Grad-CAM / without: batch 1 "
                f"{results.numbers['gradcam_ratio_batch1']:.2f}, batch 16 {results.numbers['gradcam_ratio_batch16']:.2f}")


# ------------------------------------------------------------------ naive baseline


def naive_baseline(model_path: Path, studies: list[Path], results: Results, count: int = 6) -> None:
    """The model loaded per job, the full decode, batch 1, Grad-CAM through the whole network."""
    from core.imageio import decode_image
    from training.gradcam import GradCamExplainer, overlay_png
    from training.predict import Predictor

    def one(path: Path, sex: str) -> None:
        predictor = Predictor.from_checkpoint(model_path)
        image = decode_image(path.read_bytes())
        squares = predictor.preprocess([image])
        predictor.forward(squares, np.array([sex == "M"], dtype=np.float32))
        (heatmap,) = GradCamExplainer(predictor.model).heatmaps(squares, np.array([sex == "M"], dtype=np.float32))
        overlay_png(squares[0], heatmap)

    one(studies[0], "M")  # warm-up (imports, file cache)
    started = time.perf_counter()
    for i, path in enumerate(studies[:count]):
        one(path, "MF"[i % 2])
    per_s = count / (time.perf_counter() - started)
    results.numbers["naive_per_s"] = per_s
    results.say(f"naive baseline (model loaded per study, full decode, batch 1, full-network Grad-CAM, "
                f"{count} studies in one process): {per_s:.2f} studies/s ({1000 / per_s:.0f} ms per study)")


# ------------------------------------------------------------------ the service


class BenchService:
    """gunicorn + (optionally) one Celery worker on a private copy of the code, embedded
    (SQLite + filesystem queue) or services (private PostgreSQL + Redis)."""

    def __init__(self, mode: str, root: Path, model: Path, *, worker_env: dict[str, str], web_workers: int = 2,
                 workers: int = 1, code_rev: str | None = None):
        self.mode, self.root, self.model, self.code_rev = mode, root, model, code_rev
        self.worker_env, self.web_workers, self.worker_count = worker_env, web_workers, workers
        self.redis = self.postgres = self.web = None
        self.workers = []
        self.headers: dict[str, str] = {}

    def start(self, with_worker: bool = True) -> "BenchService":
        from core.settings import Settings
        from fault_injection import PrivatePostgres, PrivateRedis, Proc, free_port, snapshot_code

        env = {"BONEAGE_VAR_DIR": str(self.root / "var"), "BONEAGE_SUBMIT_RATE_LIMIT": "1000000 per minute",
               "BONEAGE_LOGIN_RATE_LIMIT": "1000000 per minute"}
        if self.mode == "services":
            self.redis = PrivateRedis(self.root)
            self.redis.start()
            self.postgres = PrivatePostgres()
            self.postgres.init()
            env |= {"DATABASE_URL": self.postgres.url, "BROKER_URL": self.redis.url}
        self.settings = Settings.from_env(env)
        self.settings.ensure_dirs()
        self.code = code = (snapshot_code(self.root / "code") if not self.code_rev
                            else export_revision(self.code_rev, self.root / "code"))
        self.env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", "BONEAGE_DEVICE": "cpu",
                    "PYTHONPATH": str(code)}

        def cli(*argv: str) -> str:
            return subprocess.run([sys.executable, "-m", "boneage", *argv], cwd=code, check=True, env=self.env,
                                  capture_output=True, text=True).stdout

        cli("db", "upgrade")
        cli("register-model", str(self.model), "--activate")
        cli("users", "add", "bench", "--role", "submitter")
        self.headers = {"Authorization": f"Bearer {cli('users', 'token', 'bench').strip().splitlines()[-1].strip()}"}
        self.port = free_port()
        logs = self.root / "logs"
        self.web = Proc("web", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers",
                                str(self.web_workers), "--threads", "4", "--timeout", "120", "web:create_app()"],
                        self.env, logs / "web.log", cwd=code).start()
        if with_worker:
            self.workers = [Proc(f"worker{i}", [sys.executable, "-m", "boneage", "worker", "--hostname",
                                                f"bench{i}@%h"], {**self.env, **self.worker_env},
                                 logs / f"worker{i}.log", cwd=code).start() for i in range(self.worker_count)]
        self.web.wait_for("Booting worker")
        for worker in self.workers:
            worker.wait_for(" ready.")
        self._wait_web()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_web(self, timeout: float = 120) -> None:
        from fault_injection import wait_until_healthy

        wait_until_healthy(self.base_url, self.web, timeout)

    def submit(self, path: Path, study: int) -> str:
        import requests

        for _ in range(20):
            with path.open("rb") as fh:
                response = requests.post(f"{self.base_url}/api/v1/assessments", headers=self.headers, timeout=120,
                                         files={"image": (path.name, fh, "image/png")},
                                         data={"sex": "MF"[study % 2], "age_years": str(3 + study % 14),
                                               "reference": f"BENCH-{study:04d}"})
            if response.status_code == 202:
                return response.json()["id"]
            if response.status_code not in (429, 503):
                raise RuntimeError(f"submission {study}: {response.status_code} {response.text[:300]}")
            time.sleep(1)
        raise RuntimeError(f"submission {study} refused 20 times")

    def database_writes(self) -> tuple[float, float]:
        """database_writes() run with the service's own code (its models match its schema)."""
        import inspect

        script = ("import time\nfrom datetime import datetime, timezone\n" + inspect.getsource(database_writes)
                  + f"\nprint(*database_writes({self.settings.database_url!r}))\n")
        out = subprocess.run([sys.executable, "-c", script], cwd=self.code, env=self.env, check=True,
                             capture_output=True, text=True).stdout
        submit_ms, result_ms = (float(v) for v in out.split()[-2:])
        return submit_ms, result_ms

    def finished(self, ids: set[str]) -> dict[str, tuple[str, datetime | None]]:
        from db.models import Assessment
        from db.session import session_factory

        with session_factory(self.settings.database_url)() as session:
            rows = session.query(Assessment.id, Assessment.status, Assessment.finished_at, Assessment.error).filter(
                Assessment.id.in_(list(ids))).all()
        return {r.id: (str(r.status), r.finished_at, r.error) for r in rows if str(r.status) in ("succeeded", "failed")}

    def stop(self) -> None:
        from db.session import dispose_engines

        for proc in (*self.workers, self.web):
            if proc is not None:
                proc.stop()
        dispose_engines()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.destroy()


def export_revision(rev: str, target: Path) -> Path:
    """The service's packages as committed at `rev` (for a before/after run on one machine)."""
    from fault_injection import CODE_PACKAGES

    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, *CODE_PACKAGES], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def database_writes(database_url: str, count: int = 50) -> tuple[float, float]:
    """ms per study of the service's own writes: the job's row at submission, and the claim
    plus the result at the end (each its own transaction, as services/assessments.py does)."""
    from core.status import JobStatus
    from db.models import Assessment
    from db.session import unit_of_work_factory

    uow = unit_of_work_factory(database_url)
    ids, started = [], time.perf_counter()
    for i in range(count):
        with uow() as work:
            row = work.assessments.add(Assessment(image_sha256=f"{i:064x}", image_path=f"uploads/bench-{i}.png",
                                                  sex="MF"[i % 2], reference=f"DBW-{i}", sends=1,
                                                  enqueued_at=datetime.now(timezone.utc)))
            work.commit()
            ids.append(row.id)
    submit_ms = 1000 * (time.perf_counter() - started) / count
    started = time.perf_counter()
    for assessment_id in ids:
        now = datetime.now(timezone.utc)
        with uow() as work:
            attempt = work.assessments.claim(work.assessments.get(assessment_id), now=now, stale_before=now)
            work.commit()
        with uow() as work:
            work.assessments.transition(assessment_id, JobStatus.SUCCEEDED, attempt=attempt, finished_at=now,
                                        bone_age_months=100.0, stage="Child", heatmap_path="heatmaps/x.png")
            work.commit()
    result_ms = 1000 * (time.perf_counter() - started) / count
    with uow() as work:  # leave nothing behind for the run that follows
        for assessment_id in ids:
            work.session.delete(work.assessments.get(assessment_id))
        work.commit()
    return submit_ms, result_ms


def process_cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User + system CPU seconds of a process and (unless `descendants` is False) of all its
    descendants, living or reaped."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)] if descendants else [root]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
            if descendants:
                total += times.children_user + times.children_system
    return total


def service_processes(service: "BenchService") -> dict[str, int]:
    """The service's processes by role: {label: root pid} (each counted with its descendants)."""
    roles = {"web (gunicorn)": service.web.process.pid}
    for i, worker in enumerate(service.workers):
        roles[f"worker {i}" if len(service.workers) > 1 else "worker"] = worker.process.pid
    if service.postgres:
        roles["PostgreSQL"] = int((service.postgres.data / "postmaster.pid").read_text().split()[0])
    if service.redis:
        roles["Redis"] = service.redis.proc.process.pid
    return roles


def roles_cpu_seconds(roles: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each role's process tree, and of this benchmark's own process (the clients;
    the service's processes are its descendants, so they are not counted again)."""
    return {**{role: process_cpu_seconds(pid) for role, pid in roles.items()},
            "clients (this benchmark)": process_cpu_seconds(os.getpid(), descendants=False)}


def end_to_end(mode: str, model: Path, studies: list[Path], results: Results, *, concurrency: int,
               worker_env: dict[str, str], workers: int, bound: float | None, keep: bool,
               code_rev: str | None = None) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"boneage-bench-{mode}-"))
    service = BenchService(mode, root, model, worker_env=worker_env, workers=workers, code_rev=code_rev)
    try:
        log(f"e2e {mode}: starting the service in {root}")
        service.start()
        submit_ms, result_ms = service.database_writes()
        results.numbers[f"db_ms:{mode}"] = (submit_ms, result_ms)
        # warm-up: each worker loads torch and the model on its first job
        warm = {service.submit(studies[i], 10_000 + i) for i in range(max(2, workers))}
        _wait(service, warm, timeout=600)
        load_before = load_average()
        log(f"e2e {mode}: submitting {len(studies)} studies from {concurrency} clients")
        submitted: dict[str, float] = {}
        roles = service_processes(service)
        cpu_before = roles_cpu_seconds(roles)
        started_wall = time.time()

        def one(index: int) -> None:
            at = time.time()
            submitted[service.submit(studies[index], index)] = at

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(len(studies))))
        submit_done = time.time()
        done = _wait(service, set(submitted), timeout=1800)
        cpu_ms = {role: 1000 * (seconds - cpu_before[role]) / len(studies)
                  for role, seconds in roles_cpu_seconds(roles).items()}
        finished = {i: v[1].timestamp() for i, v in done.items()}
        failed = {i: v[2] for i, v in done.items() if v[0] == "failed"}
        end = max(finished.values())
        rate = len(studies) / (end - started_wall)
        latencies = sorted(finished[i] - submitted[i] for i in submitted)
        p50, p95 = np.percentile(latencies, 50), np.percentile(latencies, 95)
        label = f"{mode} @ {code_rev}" if code_rev else mode
        results.numbers[f"e2e:{label}"] = dict(rate=rate, p50=p50, p95=p95, failed=len(failed),
                                              submit_rate=len(studies) / (submit_done - started_wall),
                                              cpu_ms_per_study=cpu_ms)
        ratio = f"{rate / bound:.2f}" if bound else "n/a"
        results.say(f"| {label} | {len(studies)} | {concurrency} | {workers} x {worker_env.get('BONEAGE_TORCH_THREADS', 'default')} "
                    f"| {rate:.2f} | {len(studies) / (submit_done - started_wall):.2f} | {p50:.1f} | {p95:.1f} "
                    f"| {ratio} | {len(failed)} | {submit_ms:.1f} / {result_ms:.1f} | {load_before} → {load_average()} |")
        if failed:
            log(f"e2e {mode}: failures, e.g. {next(iter(failed.values()))}")
    finally:
        service.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def cpu_by_process(results: Results) -> None:
    """The end-to-end runs' CPU per study by process, and the rate that CPU allows on this machine."""
    runs = {k.removeprefix("e2e:"): v["cpu_ms_per_study"] for k, v in results.numbers.items() if k.startswith("e2e:")}
    if not runs:
        return
    roles = list(dict.fromkeys(role for cpu in runs.values() for role in cpu))
    cores = os.cpu_count() or 1
    results.say()
    results.say("CPU ms per study by process during the end-to-end runs (user + system, each process with its "
                "descendants, from the first submission to the last result):")
    results.say("| mode | " + " | ".join(roles) + f" | total | studies/s that CPU allows on {cores} cores |")
    results.say("|---|" + "---:|" * (len(roles) + 2))
    for label, cpu in runs.items():
        total = sum(cpu.values())
        results.say(f"| {label} | " + " | ".join(f"{cpu[r]:.1f}" if r in cpu else "-" for r in roles)
                    + f" | {total:.1f} | {1000 * cores / total:.1f} |")


def _wait(service: BenchService, ids: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done = service.finished(ids)
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids) - len(done)} of {len(ids)} studies unfinished after {timeout} s; "
                               f"worker log:\n{service.workers[0].log()[-3000:] if service.workers else ''}")
        time.sleep(0.25)


# ------------------------------------------------------------------ the web tier


LOCUSTFILE = textwrap.dedent('''
    import json, os, random, time
    from locust import HttpUser, between, constant_pacing, task
    from locust.contrib.fasthttp import FastHttpUser

    HEADERS = json.loads(os.environ["BENCH_HEADERS"])
    IDS = json.loads(os.environ["BENCH_IDS"])
    IMAGES = json.loads(os.environ["BENCH_IMAGES"])
    POLL_EVERY = float(os.environ["BENCH_POLL_EVERY_S"])

    class Poller(FastHttpUser):  # geventhttpclient: light enough that 32 pollers do not queue in the client
        fixed_count = int(os.environ["BENCH_POLLERS"])
        # constant pacing keeps the pollers in the phase they started in; "spread" adds a random
        # jitter of up to +-50% to every interval (mean POLL_EVERY), as separate browsers' timers drift
        if os.environ["BENCH_POLL_PHASE"] == "burst":
            wait_time = constant_pacing(POLL_EVERY)
        else:
            wait_time = between(0.5 * POLL_EVERY, 1.5 * POLL_EVERY)

        def on_start(self):
            # a browser polling a page has its connection open already: open it here (counted
            # under "connect", not "poll"), then start at a random phase of the poll period
            self.client.get("/healthz", name="connect")
            if os.environ["BENCH_POLL_PHASE"] != "burst":
                time.sleep(random.uniform(0, POLL_EVERY))

        @task
        def poll(self):
            self.client.get(f"/api/v1/assessments/{random.choice(IDS)}", headers=HEADERS, name="poll")

    class Submitter(HttpUser):
        fixed_count = int(os.environ["BENCH_SUBMITTERS"])
        wait_time = between(0, 0)

        @task
        def submit(self):
            path = random.choice(IMAGES)
            with open(path, "rb") as fh:
                self.client.post("/api/v1/assessments", headers=HEADERS, name="submit",
                                 files={"image": (os.path.basename(path), fh, "image/png")},
                                 data={"sex": random.choice("MF"), "age_years": "9"})
''')


def _warm_up(service: BenchService, ids: list[str], concurrent_polls: int = 16, rounds: int = 8) -> None:
    """Polls concurrently before measuring, so that every gunicorn thread has opened its database
    connection and run its first request (the first request of each costs 80-380 ms: not the
    steady state that a status poll's latency is about)."""
    import requests

    def poll(i: int) -> int:
        return requests.get(f"{service.base_url}/api/v1/assessments/{ids[i % len(ids)]}",
                            headers=service.headers, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(concurrent_polls) as pool:
        list(pool.map(poll, range(concurrent_polls * rounds)))


def web_tier(model: Path, studies: list[Path], results: Results, *, mode: str, pollers: int, submitters: int,
             seconds: int, poll_every: float, web_workers: int, code_rev: str | None = None,
             poll_phase: str = "spread") -> None:
    import csv

    root = Path(tempfile.mkdtemp(prefix="boneage-bench-web-"))
    service = BenchService(mode, root, model, worker_env={}, web_workers=web_workers, code_rev=code_rev)
    try:
        service.start(with_worker=False)
        ids = [service.submit(studies[i], 20_000 + i) for i in range(8)]
        _warm_up(service, ids)
        (root / "locustfile.py").write_text(LOCUSTFILE)
        env = {**os.environ, "BENCH_HEADERS": json.dumps(service.headers), "BENCH_IDS": json.dumps(ids),
               "BENCH_IMAGES": json.dumps([str(p) for p in studies[:16]]), "BENCH_POLLERS": str(pollers),
               "BENCH_SUBMITTERS": str(submitters), "BENCH_POLL_EVERY_S": str(poll_every),
               "BENCH_POLL_PHASE": poll_phase}
        locust = Path(sys.executable).with_name("locust")
        # "spread": the pollers start one after another across one poll period, so their polls keep
        # independent phases, as separate browsers' do; "burst": all start at once and, with fixed
        # pacing, poll in lockstep - 32 requests in the same millisecond every period (the worst case).
        spawn_rate = (pollers + submitters) if poll_phase == "burst" else max(1.0, pollers / poll_every)
        load_before = load_average()
        command = [str(locust), "-f", str(root / "locustfile.py"), "--headless", "--host", service.base_url,
                   "-u", str(pollers + submitters), "-r", f"{spawn_rate:g}", "-t", f"{seconds}s",
                   "--csv", str(root / "stats"), "--only-summary", "--stop-timeout", "10",
                   "--reset-stats"]  # steady state: the statistics restart once every user has started
        subprocess.run(command, env=env, cwd=root, check=False, capture_output=True, text=True, timeout=seconds + 120)
        stats = {row["Name"]: row for row in csv.DictReader((root / "stats_stats.csv").open())}
        poll, submit = stats.get("poll", {}), stats.get("submit", {})

        def number(row, key):
            return float(row.get(key) or "nan")

        submissions = number(submit, "Request Count") / seconds if submit else 0.0
        results.numbers[f"web:{mode}"] = dict(
            submissions_per_s=submissions, poll_p50=number(poll, "50%"), poll_p95=number(poll, "95%"),
            poll_p99=number(poll, "99%"), poll_per_s=number(poll, "Requests/s"),
            poll_failures=number(poll, "Failure Count"), submit_failures=number(submit, "Failure Count") if submit else 0)
        n = results.numbers[f"web:{mode}"]
        results.say(f"| {mode}{' @ ' + code_rev if code_rev else ''} | {web_workers} x 4 threads | {pollers} every {poll_every:g} s, {poll_phase} | {submitters} "
                    f"| {submissions:.2f} | {n['poll_per_s']:.1f} | {n['poll_p50']:.0f} / {n['poll_p95']:.0f} / "
                    f"{n['poll_p99']:.0f} | {int(n['poll_failures'])} / {int(n['submit_failures'])} "
                    f"| {load_before} → {load_average()} |")
    finally:
        service.stop()
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ CPU per study


# The steps the CPU profile reports: (label, "module:qualified name"). Each is timed
# cumulatively (a step inside another counts in both; a step called twice per study counts
# twice); steps missing from the code under test (an older revision) are left out.
WEB_STEPS = [
    ("multipart parsing of the upload (werkzeug)", "werkzeug.formparser:MultiPartParser.parse"),
    ("bearer token lookup", "services.users:user_for_token"),
    ("parse_submission: decode and reduce to the working copy", "core.submission:parse_submission"),
    ("  of which decode_gray", "core.imageio:decode_gray"),
    ("submit_assessment: store, copies, the job's row, queue", "services.assessments:submit_assessment"),
    ("  de-identify (strip metadata)", "core.deidentify:deidentify"),
    ("  store the upload (SHA-256, write)", "db.files:FileStore.put_upload"),
    ("  working copy encode", "core.working_image:WorkingImage.png"),
    ("  display copy (reduce, encode)", "core.working_image:WorkingImage.display_png"),
    ("  queue the job", "services.queue:CeleryTaskQueue.enqueue_assessment"),
    ("the response's JSON", "web.presenters:assessment_json"),
]
WORKER_STEPS = [
    ("claim the batch's other jobs (database)", "services.assessments:_claim_more"),
    ("read the working copy (+ the upload's header bytes)", "services.assessments:_stored_image"),
    ("image checks", "core.image_checks:check_radiograph"),
    ("hand location (core.hand.locate_hand, every call)", "core.hand:locate_hand"),
    ("Predictor.predict", "training.predict:Predictor.predict"),
    ("  orientation (upright)", "training.orientation:upright"),
    ("  preprocessing", "training.predict:Predictor.preprocess"),
    ("  forward passes with TTA (+ features, layer-4 maps)", "training.predict:Predictor.forward"),
    ("  Grad-CAM from the head", "training.gradcam:HeadGradCam.heatmaps"),
    ("  overlay PNG", "training.gradcam:overlay_png"),
    ("  OOD score", "training.ood:OodModel.scores"),
    ("write the result (heatmap file + database)", "services.assessments:_finish"),
    ("write a failure (database)", "services.assessments:_fail"),
]
POLL_STEPS = [
    ("bearer token lookup", "services.users:user_for_token"),
    ("the study's row", "web.api:_get_or_404"),
    ("the response's JSON", "web.presenters:assessment_json"),
]


@contextlib.contextmanager
def timed_steps(steps):
    """CPU time (time.process_time) spent inside each step's function, by wrapping it where
    it is defined and wherever a module imported it by name; yields {label: seconds}."""
    import functools
    import importlib

    totals: dict[str, float] = {}
    patches: list[tuple[object, str, object]] = []
    for label, spec in steps:
        module_name, _, qualname = spec.partition(":")
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        original = owner.__dict__.get(name) if owner is not None else None
        if not callable(original):
            continue
        totals[label] = 0.0
        depth = [0]

        @functools.wraps(original)
        def wrapper(*args, _original=original, _label=label, _depth=depth, **kwargs):
            if _depth[0]:  # a recursive call is inside the outer one's time
                return _original(*args, **kwargs)
            _depth[0] += 1
            started = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.process_time() - started
                _depth[0] -= 1

        owners = [owner]
        if not path:  # a module-level function: also where it was imported by name
            owners += [m for m in list(sys.modules.values())
                       if m is not owner and getattr(m, "__dict__", {}).get(name) is original]
        for where in owners:
            patches.append((where, name, original))
            setattr(where, name, wrapper)
    try:
        yield totals
    finally:
        for where, name, original in reversed(patches):
            setattr(where, name, original)


def cpu_per_study(model: Path, studies: list[Path], results: Results, *, count: int, batch: int) -> None:
    """CPU time (time.process_time: all of a process's threads, so it does not depend on the
    machine's load) per study of each process of the service, measured in this one process:
    the web's submission (POST /api/v1/assessments through the Flask app's test client,
    embedded: SQLite and the filesystem queue), the worker's run_assessment in batches (as
    `boneage worker` runs it), and one status poll; with the time inside each step."""
    import migrations
    from core.settings import Settings
    from db.files import open_file_store
    from db.session import dispose_engines, unit_of_work_factory
    from services.assessments import run_assessment
    from services.predictors import PredictorCache
    from web import create_app

    import training.predict  # noqa: F401 - loaded before its steps are wrapped

    root = Path(tempfile.mkdtemp(prefix="boneage-bench-cpu-"))
    try:
        env = {"BONEAGE_VAR_DIR": str(root / "var"), "BONEAGE_SUBMIT_RATE_LIMIT": "1000000 per minute",
               "BONEAGE_LOGIN_RATE_LIMIT": "1000000 per minute"}
        settings = Settings.from_env(env)
        settings.ensure_dirs()
        child_env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(REPO_ROOT)}

        def cli(*argv: str) -> str:
            return subprocess.run([sys.executable, "-m", "boneage", *argv], cwd=REPO_ROOT, check=True,
                                  env=child_env, capture_output=True, text=True).stdout

        migrations.upgrade(settings.database_url)
        cli("register-model", str(model), "--activate")
        cli("users", "add", "bench", "--role", "submitter")
        headers = {"Authorization": f"Bearer {cli('users', 'token', 'bench').strip().splitlines()[-1].strip()}"}
        app = create_app(settings)
        client = app.test_client()
        paths = studies[: count + 1]  # the last one warms up
        blobs = [p.read_bytes() for p in paths]

        def post(i: int) -> str:
            response = client.post("/api/v1/assessments", headers=headers, content_type="multipart/form-data",
                                   data={"image": (io.BytesIO(blobs[i]), paths[i].name), "sex": "MF"[i % 2],
                                         "age_years": str(3 + i % 14)})
            if response.status_code != 202:
                raise RuntimeError(f"submission {i}: {response.status_code} {response.get_data(as_text=True)[:300]}")
            return response.get_json()["id"]

        warm_id = post(count)  # imports, the database's connection
        with timed_steps(WEB_STEPS) as web_steps:
            started = time.process_time()
            ids = [post(i) for i in range(count)]
            web_ms = 1000 * (time.process_time() - started) / count

        def poll() -> None:
            response = client.get(f"/api/v1/assessments/{ids[0]}", headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"poll: {response.status_code}")

        uow = unit_of_work_factory(settings.database_url)
        files = open_file_store(settings)
        predictors = PredictorCache(device="cpu")
        run_assessment(warm_id, uow=uow, files=files, predictors=predictors)  # loads torch and the model
        from services.assessments import _active_model

        warm = np.random.default_rng(0).random((1024, 800), dtype=np.float32)
        predictors.get(_active_model(uow)).predict([warm] * batch, ["M"] * batch)  # the batch's kernels
        with timed_steps(WORKER_STEPS) as worker_steps:
            started = time.process_time()
            for i in range(0, len(ids), batch):
                run_assessment(ids[i], uow=uow, files=files, predictors=predictors, batch_size=batch)
            worker_ms = 1000 * (time.process_time() - started) / count
        with uow() as work:
            statuses = [str(work.assessments.get(i).status) for i in ids]
        polls = 300
        for _ in range(20):
            poll()
        with timed_steps(POLL_STEPS) as poll_steps:
            started = time.process_time()
            for _ in range(polls):
                poll()
            poll_ms = 1000 * (time.process_time() - started) / polls
    finally:
        dispose_engines()
        shutil.rmtree(root, ignore_errors=True)

    failed = sum(s == "failed" for s in statuses)
    unfinished = sum(s not in ("succeeded", "failed") for s in statuses)
    results.numbers["cpu_ms"] = dict(web=web_ms, worker=worker_ms, poll=poll_ms,
                                     web_steps={k: 1000 * v / count for k, v in web_steps.items()},
                                     worker_steps={k: 1000 * v / count for k, v in worker_steps.items()},
                                     poll_steps={k: 1000 * v / polls for k, v in poll_steps.items()})
    results.say(f"CPU per study (time.process_time, all of a process's threads; {count} full-resolution PNGs "
                f"(8- and 16-bit alternately); worker batches of {batch}, {torch_threads()} torch threads; "
                f"{failed} refused, {unfinished} unfinished; load average {load_average()}):")
    results.say("| process | step | CPU ms per study |")
    results.say("|---|---|---:|")
    results.say(f"| web | **POST /api/v1/assessments, total** (Flask test client, SQLite) | **{web_ms:.1f}** |")
    for label, seconds in web_steps.items():
        results.say(f"| web | {label} | {1000 * seconds / count:.1f} |")
    results.say(f"| worker | **run_assessment, total** | **{worker_ms:.1f}** |")
    for label, seconds in worker_steps.items():
        results.say(f"| worker | {label} | {1000 * seconds / count:.1f} |")
    results.say(f"| web | **GET /api/v1/assessments/<id>, total** (one status poll, the test client's share included) "
                f"| **{poll_ms:.2f}** |")
    for label, seconds in poll_steps.items():
        results.say(f"| web | {label} | {1000 * seconds / polls:.2f} |")
    results.say(f"web + worker: {web_ms + worker_ms:.0f} CPU ms per study, so at most "
                f"{2000 / (web_ms + worker_ms):.1f} studies/s on 2 cores (before gunicorn's and the client's share)")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "bench-out" / "real-quick" / "model.pt")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="the RSNA sample (real films)")
    parser.add_argument("--images-dir", type=Path, default=DEFAULT_IMAGES_DIR,
                        help="where the full-resolution PNGs are written once (outside the repository)")
    parser.add_argument("--parts", default="model,stages,naive,e2e,web")
    parser.add_argument("--modes", default="embedded,services", help="for e2e and web")
    parser.add_argument("--studies", type=int, default=200, help="end-to-end studies per mode")
    parser.add_argument("--bit-depths", default="8,16", choices=("8,16", "8", "16"),
                        help="the uploads' PNG bit depths: 8,16 (alternately), 8 or 16")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent submitting clients (e2e)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (e2e)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (this process, and BONEAGE_TORCH_THREADS of the workers)")
    parser.add_argument("--cpu-studies", type=int, default=32, help="cpu part: studies submitted and run")
    parser.add_argument("--cpu-batch", type=int, default=16, help="cpu part: the worker's batch size")
    parser.add_argument("--pollers", type=int, default=32)
    parser.add_argument("--poll-every", type=float, default=1.0, help="seconds between one poller's polls")
    parser.add_argument("--poll-phase", choices=("spread", "burst"), default="spread",
                        help="spread: pollers start across one poll period (independent browsers); "
                             "burst: all at once, polling in lockstep (the worst case)")
    parser.add_argument("--submitters", type=int, default=2, help="web part: clients submitting without pause")
    parser.add_argument("--web-seconds", type=int, default=30)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the e2e folders (logs) in /tmp")
    parser.add_argument("--code-rev", default=None,
                        help="e2e/web: run the service's code as committed at this git revision (a 'before' run); "
                             "default: the working tree")
    args = parser.parse_args(argv)
    args.model = args.model.resolve()  # the service runs from a copy of the code, elsewhere
    parts = set(args.parts.split(","))
    modes = [m for m in args.modes.split(",") if m]

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["BONEAGE_TORCH_THREADS"] = str(args.threads)
    results = Results()
    results.say(f"machine: {machine()}")
    results.say(f"load average (1/5/15 min) at start: {load_average()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    log(f"preparing {args.studies} full-resolution studies in {args.images_dir}")
    needed = max(args.studies, 16, args.cpu_studies + 1 if "cpu" in parts else 0)
    depths = sorted({int(d) for d in args.bit_depths.split(",")})
    # the films alternate 8- and 16-bit: twice as many are made when only one depth is wanted
    made = full_resolution_studies(args.sample, needed * (2 if len(depths) == 1 else 1), args.images_dir)
    studies = [p for p in made if int(p.stem.rsplit("-", 1)[1].removesuffix("bit")) in depths][:needed]
    from PIL import Image

    with Image.open(studies[0]) as first, Image.open(studies[1]) as second:
        sizes = f"{first.size[0]}x{first.size[1]} {first.mode}, {second.size[0]}x{second.size[1]} {second.mode}"
    mb = np.mean([p.stat().st_size for p in studies[: args.studies]]) / 1e6
    kinds = "8- and 16-bit PNG alternately" if len(depths) > 1 else f"{depths[0]}-bit PNG"
    results.say(f"studies: {args.studies} real sample films upscaled to a {FULL_SIDE} px longest side, "
                f"{kinds} (e.g. {sizes}; {mb:.1f} MB each on average)")
    results.say()

    from training.predict import Predictor

    predictor = Predictor.from_checkpoint(args.model)
    bound = None
    if "model" in parts:
        bound = model_bound(predictor, results)
        results.say()
    if "stages" in parts:
        stages(predictor, studies, results)
        results.say()
    if "precision" in parts:
        precision_choices(args.model, args.sample, results, predictor.device)
        results.say()
    if "cpu" in parts:
        cpu_per_study(args.model, studies, results, count=args.cpu_studies, batch=args.cpu_batch)
        results.say()
    if "naive" in parts:
        naive_baseline(args.model, studies, results)
        results.say()
    del predictor
    worker_env = {"BONEAGE_TORCH_THREADS": str(args.threads)} if args.threads else {}
    if "e2e" in parts:
        results.say("end to end (gunicorn 2 x 4 threads + Celery worker(s), solo pool; latency: client's submit "
                    "→ result stored):")
        results.say("| mode | studies | clients | workers x torch threads | assessments/s | submissions/s "
                    "| p50 s | p95 s | / model bound | failed | DB writes ms (submit / result) | load avg before → after |")
        results.say("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
        for mode in modes:
            end_to_end(mode, args.model, studies[: args.studies], results, concurrency=args.concurrency,
                       worker_env=worker_env, workers=args.workers, bound=bound, keep=args.keep,
                       code_rev=args.code_rev)
        cpu_by_process(results)
        if "naive_per_s" in results.numbers:
            best = max(v["rate"] for k, v in results.numbers.items() if k.startswith("e2e:"))
            results.say(f"naive baseline / best end to end: {results.numbers['naive_per_s'] / best:.2f}")
        results.say()
    if "web" in parts:
        results.say(f"web tier alone (gunicorn on loopback, no worker; locust headless, {args.web_seconds} s; "
                    "poll latency in ms):")
        results.say("| mode | gunicorn | pollers | submitters | submissions/s | polls/s | poll p50 / p95 / p99 ms "
                    "| failures poll / submit | load avg before → after |")
        results.say("|---|---|---|---:|---:|---:|---|---|---|")
        for mode in modes:
            web_tier(args.model, studies, results, mode=mode, pollers=args.pollers, submitters=args.submitters,
                     seconds=args.web_seconds, poll_every=args.poll_every, web_workers=args.web_workers,
                     code_rev=args.code_rev, poll_phase=args.poll_phase)
        results.say()
    results.say(f"load average at the end: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(results.numbers, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
