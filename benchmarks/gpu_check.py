"""The GPU check (issue 10, item 7): one script, at most about 5 minutes on one CUDA GPU.

    .venv/bin/python benchmarks/gpu_check.py [--model bench-out/real-quick/model.pt] [--sample DIR]
    .venv/bin/python benchmarks/gpu_check.py --quick      # a small run on the CPU, to know it works

Prints:
1. training images/s of the `large` recipe (448 px, batch 32) on the real RSNA sample: the
   training loop's data path as it runs on this device (on CUDA: DataLoader workers,
   pinned memory, non-blocking copies, mixed precision, channels-last), over whole epochs
   after a warm-up epoch;
2. inference: Predictor.predict with Grad-CAM on preprocessed studies at batch 1 and at the
   best of 1/8/16/32/64, studies/s, and the model bound (forward passes alone);
3. end to end in one process, per study: the working copy of a full-resolution PNG
   (decoded and reduced as at submission), the upright/OOD/preprocessing steps and the
   prediction with Grad-CAM and overlay, at batch 1 and the best batch (the service's
   web and database are not part of it: see bench_throughput.py for those);
4. held-out MAE of --model on the sample's test split in float32, float16 and bfloat16
   autocast (a precision is kept only within 0.1 months of float32);
5. peak GPU memory.
Nothing is written into the repository (temporary files go under /tmp).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEFAULT_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "rsna-sample"


def say(message: str = "") -> None:
    print(message, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_speed(sample: Path, device: torch.device, *, quick: bool, budget_s: float) -> None:
    from training.recipes import get_recipe
    from training.train import Trainer, TrainingData

    recipe = get_recipe("large").with_overrides(init="random", **({"image_size": 64, "batch_size": 16} if quick else {}))
    limit = 64 if quick else None
    with tempfile.TemporaryDirectory(prefix="boneage-gpu-check-") as tmp:
        started = time.perf_counter()
        data = TrainingData.prepare(sample, recipe, limit=limit, progress=False, cache_dir=Path(tmp) / "cache")
        say(f"  cache of {len(data.records)} films at {recipe.image_size} px built in {time.perf_counter() - started:.1f} s")
        trainer = Trainer(recipe, data, Path(tmp) / "run", seed=0, time_budget_s=None, progress=False,
                          data_dir=str(sample))
        n = len(data.indices["train"])
        trainer.train_one_epoch()  # warm-up: cuDNN autotuning, DataLoader workers, allocator
        sync(device)
        epochs, started = 0, time.perf_counter()
        while epochs < 1 or (time.perf_counter() - started < budget_s and epochs < 20):
            trainer.train_one_epoch()
            sync(device)
            epochs += 1
        seconds = time.perf_counter() - started
    say(f"  training `large` ({recipe.image_size} px, batch {recipe.batch_size}, {n} training films, "
        f"{epochs} epochs after one warm-up): {n * epochs / seconds:.1f} images/s")


def inference_speed(model_path: Path, sample: Path, device: torch.device, *, quick: bool, full_dir: Path) -> None:
    from core.imageio import decode_image
    from training.augment import hflip, to_float
    from training.predict import Predictor

    predictor = Predictor.from_checkpoint(model_path, device=str(device))
    films = sorted((sample / "boneage-training-dataset").glob("*.png"))[: 16 if quick else 128]
    images = [decode_image(p) for p in films]
    sexes = list(itertools.islice(itertools.cycle("MF"), len(images)))
    squares = predictor.preprocess(images)
    male = np.array([s == "M" for s in sexes], dtype=np.float32)
    say(f"  model {predictor.model_version}: {predictor.recipe.image_size} px, TTA {predictor.recipe.tta}, "
        f"precision {predictor.precision.dtype}, channels-last {predictor.precision.channels_last}")
    batches = (1, 8, 16) if quick else (1, 8, 16, 32, 64)

    def rate(function, count: int, minimum_s: float) -> float:
        function()
        sync(device)
        done, started = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - started < minimum_s:
            function()
            sync(device)
            done += count
        return done / (time.perf_counter() - started)

    minimum = 0.5 if quick else 3.0
    for batch in batches:
        x = predictor.precision.layout(to_float(torch.from_numpy(squares[:batch])).to(device))
        m = torch.from_numpy(male[:batch]).to(device)

        def forward():
            with torch.inference_mode(), predictor.precision.autocast(device):
                predictor.model(x, m)
                predictor.model(hflip(x), m)

        bound = rate(forward, batch, minimum)
        chunks = [(squares[i : i + batch], male[i : i + batch]) for i in range(0, len(squares) - batch + 1, batch)]

        def with_gradcam():
            from training.gradcam import overlay_png

            for s, sex in chunks:
                forward_pass = predictor.forward(s, sex)
                maps = predictor.explainer.heatmaps(forward_pass.feature_maps, sex, s.shape[-1])
                for square, heatmap in zip(s, maps):
                    overlay_png(square, heatmap)

        gradcam = rate(with_gradcam, batch * len(chunks), minimum)
        say(f"  batch {batch:>3}: model bound {bound:8.1f} studies/s; forward + Grad-CAM + overlay {gradcam:8.1f} studies/s")

    # end to end in one process, from a full-resolution PNG
    from PIL import Image

    full_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, film in enumerate(films[: 8 if quick else 32]):
        path = full_dir / f"{film.stem}-{8 if i % 2 == 0 else 16}bit.png"
        if not path.is_file():
            picture = Image.open(film).convert("F")
            scale = 2500 / max(picture.size)
            pixels = np.clip(np.asarray(picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                                       Image.Resampling.BICUBIC)) / 255.0, 0, 1)
            out = (Image.fromarray(np.round(pixels * 255).astype(np.uint8)) if i % 2 == 0
                   else Image.fromarray(np.round(pixels * 65535).astype(np.uint16)))
            out.save(path, format="PNG")
        paths.append(path)
    blobs = [p.read_bytes() for p in paths]
    try:
        from core.working_image import make_working_image

        def working(blob):
            return make_working_image(blob).as_float()
        how = "working copy (make_working_image)"
    except ImportError:
        working, how = decode_image, "decode_image"
    for batch in sorted({1, 8 if quick else 16}):
        def end_to_end():
            for i in range(0, len(blobs) - batch + 1, batch):
                decoded = [working(b) for b in blobs[i : i + batch]]
                predictor.predict(decoded, sexes[i : i + batch], gradcam=True)

        per_s = rate(end_to_end, (len(blobs) // batch) * batch, minimum)
        say(f"  end to end in one process ({how} of full-resolution PNGs + Predictor.predict with Grad-CAM), "
            f"batch {batch}: {per_s:.1f} studies/s")


def held_out_split(model_path: Path, sample: Path, *, quick: bool):
    """(model, recipe, squares, male, ages) of the model's held-out test split of the sample,
    preprocessed as the model's checkpoint says (through the preprocessing cache)."""
    from training.cache import load_image_array
    from training.model import model_from_checkpoint
    from training.preprocess import Preprocessing
    from training.recipes import Recipe
    from training.rsna import load_records

    model, metadata = model_from_checkpoint(model_path)
    recipe = Recipe.from_dict(metadata["recipe"])
    records = load_records(sample)
    test_ids = set((metadata.get("split") or {}).get("test") or [])
    chosen = [r for r in records if r.id in test_ids] if test_ids else records[-64:]
    if quick:
        chosen = chosen[:32]
    squares = load_image_array(chosen, Preprocessing(**metadata["preprocessing"]), progress=False)
    male = np.array([r.male for r in chosen], dtype=np.float32)
    ages = np.array([r.bone_age_months for r in chosen], dtype=np.float32)
    return model, recipe, squares, male, ages


def precision_mae(model_path: Path, sample: Path, device: torch.device, *, quick: bool) -> None:
    from training.inference import predict_months
    from training.precision import Precision

    model, recipe, images, male, ages = held_out_split(model_path, sample, quick=quick)
    model = model.to(device).eval()
    maes = {}
    for dtype in ("fp32", "fp16", "bf16"):
        for channels_last in (False, True):
            precision = Precision(dtype, channels_last)
            if channels_last:
                model.to(memory_format=torch.channels_last)
            else:
                model.to(memory_format=torch.contiguous_format)
            try:
                predicted = predict_months(model, images, male, tta=recipe.tta, device=device, precision=precision)
            except RuntimeError as exc:  # a dtype the device does not support
                say(f"  {dtype} channels-last {channels_last}: not supported ({exc})")
                continue
            maes[(dtype, channels_last)] = float(np.mean(np.abs(predicted - ages)))
    reference = maes[("fp32", False)]
    for (dtype, channels_last), mae in maes.items():
        verdict = "keep" if abs(mae - reference) <= 0.1 else "drop (MAE moved more than 0.1 months)"
        say(f"  held-out MAE {dtype:>4} channels-last {str(channels_last):5}: {mae:6.3f} months "
            f"({mae - reference:+.3f}; {verdict}); n = {len(ages)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "bench-out" / "real-quick" / "model.pt")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--quick", action="store_true", help="small sizes, runs on the CPU in a few minutes")
    parser.add_argument("--train-seconds", type=float, default=45.0, help="timed training after the warm-up epoch")
    parser.add_argument("--full-dir", type=Path, default=Path(tempfile.gettempdir()) / "boneage-gpu-check-fullres")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.quick:
        say("no CUDA device: this is the GPU check; run with --quick to try it on the CPU")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    say(f"device: {name}; torch {torch.__version__}; {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.2f}")
    if not (args.sample / "boneage-training-dataset").is_dir():
        say(f"no RSNA sample at {args.sample}")
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    say("1. training")
    training_speed(args.sample, device, quick=args.quick, budget_s=5.0 if args.quick else args.train_seconds)
    if not args.model.is_file():
        say(f"no model at {args.model}: inference and precision parts skipped")
    else:
        say("2./3. inference and end to end")
        inference_speed(args.model, args.sample, device, quick=args.quick, full_dir=args.full_dir)
        say("4. precision")
        precision_mae(args.model, args.sample, device, quick=args.quick)
    if device.type == "cuda":
        say(f"5. peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated, "
            f"{torch.cuda.max_memory_reserved(device) / 2**30:.2f} GiB reserved")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
