"""Image rejection (core/image_checks.py) on a labelled corpus: the confusion table.

    .venv/bin/python benchmarks/bench_rejection.py [--rsna ../shared/data/rsna-sample] [--limit N] [--features OUT.csv]

Corpus, each item labelled "hand radiograph" (must be accepted) or not (must be rejected):
- real: the RSNA sample's radiographs, and 100 of them mirrored (a right hand) and 100 rotated
  by 180 degrees (an upside-down film): hand radiographs;
- synthetic: training.synth hands (what the demo model and the tests use): hand radiographs;
- pydicom: every bundled DICOM test file (CT, MR, RT, secondary captures, ...): not hands;
  files that do not decode at all are counted apart (the upload form refuses them already);
- skimage: scikit-image's sample images (photographs, textures, text, microscopy): not hands;
- generated: blank (black, white, grey), uniform noise, Gaussian noise, text on white and on
  black, saturated (a radiograph with its top clipped), cropped (a quarter of a radiograph),
  a screenshot-like layout: not hands.

With --model, an image the rules accept goes on to the Predictor exactly as the worker sends
it (training/predict.py): the hand is located and turned upright (core/hand.py), and the
out-of-distribution score on the model's own features (training/ood.py) refuses what is unlike
its training films. A checkpoint without stored OOD statistics gets them fitted here from its
own data folder and split, exactly as training does now. The real radiographs are then also
counted by the checkpoint's split: acceptance of films the OOD statistics were fitted on
(train) is optimistic; the test split is the held-out figure.

    .venv/bin/python benchmarks/bench_rejection.py --model bench-out/real-quick/model.pt --threads 1
"""

from __future__ import annotations

import argparse
import collections
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.image_checks import check_radiograph, features  # noqa: E402
from core.imageio import ImageDecodeError, decode_image  # noqa: E402


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def rsna_items(root: Path, limit: int | None):
    files = sorted((root / "boneage-training-dataset").glob("*.png"))[:limit]
    for i, path in enumerate(files):
        data = path.read_bytes()
        yield "real radiograph", path.name, data, True
        if i < 100:
            gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
            yield "real, mirrored (right hand)", path.name, png(gray[:, ::-1].copy()), True
            yield "real, upside down", path.name, png(gray[::-1, ::-1].copy()), True
        if i < 60:
            gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
            h, w = gray.shape
            yield "generated: cropped (central quarter)", path.name, png(gray[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].copy()), False
            clipped = np.clip(gray.astype(np.float32) / 255 * 3, 0, 1)
            yield "generated: saturated", path.name, png(clipped), False


def synthetic_items(n: int):
    from training.synth import generate_dataset
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(generate_dataset(tmp, n, size=256, seed=7, progress=False))
        for path in sorted(out.rglob("*.png")):
            if "mask" in path.name or "mask" in str(path.parent.name):
                continue
            yield "synthetic hand (training.synth)", path.name, path.read_bytes(), True


def pydicom_items():
    import pydicom.data

    for name in sorted(pydicom.data.get_testdata_files()):
        if not Path(name).is_file() or (not name.endswith(".dcm") and "." in Path(name).name):
            continue
        yield "pydicom test file", Path(name).name, Path(name).read_bytes(), False


def skimage_items():
    import skimage.data as d

    names = ["astronaut", "binary_blobs", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock",
             "coffee", "coins", "colorwheel", "eagle", "grass", "gravel", "horse", "hubble_deep_field",
             "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
             "shepp_logan_phantom", "text", "motorcycle_left"]
    for name in names:
        try:
            image = getattr(d, name)() if hasattr(d, name) else d.stereo_motorcycle()[0]
        except Exception as exc:  # noqa: BLE001 - a sample that needs a download
            print(f"skipped skimage {name}: {exc}", file=sys.stderr)
            continue
        image = np.asarray(image)
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.dtype != np.uint8:
            image = ((image - image.min()) / max(1e-9, float(image.max() - image.min())) * 255).astype(np.uint8)
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        yield "scikit-image sample", name, png(image), False


def text_image(size, dark: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 0 if dark else 255)
    draw = ImageDraw.Draw(image)
    for row in range(12, size[1] - 12, 18):
        words = " ".join("".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(8))
        draw.text((10, row), words, fill=255 if dark else 0)
    return np.asarray(image)


def generated_items():
    rng = np.random.default_rng(0)
    for value in (0, 255, 128):
        yield "generated: blank", f"value {value}", png(np.full((512, 400), value, np.uint8)), False
    for seed in range(5):
        r = np.random.default_rng(seed)
        yield "generated: noise", f"uniform {seed}", png((r.random((512, 400)) * 255).astype(np.uint8)), False
        yield "generated: noise", f"gaussian {seed}", png(np.clip(r.normal(0.5, 0.2, (512, 400)), 0, 1)), False
        yield "generated: text", f"on white {seed}", png(text_image((500, 400), False, seed)), False
        yield "generated: text", f"on black {seed}", png(text_image((500, 400), True, seed)), False
    for seed in range(3):  # a screenshot: title bar, panels, text
        image = Image.new("RGB", (640, 480), (240, 240, 240))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, 640, 30), fill=(40, 60, 120))
        draw.rectangle((20, 50, 300, 460), fill=(255, 255, 255), outline=(0, 0, 0))
        for row in range(60, 440, 16):
            draw.text((30, row), f"item {row * (seed + 1)} value {rng.integers(1000)}", fill=(0, 0, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        yield "generated: screenshot", f"layout {seed}", buffer.getvalue(), False
    yield "generated: too small", "48 px hand-like", png(np.pad(np.full((30, 20), 200, np.uint8), ((9, 9), (14, 14)))), False


def judge(data: bytes):
    """The rules' verdict: (outcome, decoded image or None, reason)."""
    try:
        image = decode_image(data)
    except ImageDecodeError as exc:
        return "refused at decode", None, str(exc)
    rejection = check_radiograph(data, image)
    return ("rejected: " + rejection.code if rejection else "accepted"), image, (rejection.reason if rejection else "")


def load_predictor(path: str, data_dir: str | None, cache_dir: str | None):
    """The Predictor of a checkpoint, with OOD statistics fitted here when it has none."""
    from training.ood import OodModel, fit_from_data_dir
    from training.predict import Predictor

    predictor = Predictor.from_checkpoint(path, device="cpu")
    if predictor.ood is None:
        source = data_dir or predictor.metadata["data_dir"]
        stats = fit_from_data_dir(predictor.model, predictor.metadata, source, cache_dir=cache_dir)
        if stats is None:
            raise SystemExit(f"too few studies in {source} to fit OOD statistics")
        predictor.ood = OodModel(stats)
        print(f"OOD statistics fitted here on {source} (the checkpoint has none): "
              f"n_train={stats['n_train']}, n_val={stats['n_val']}, threshold {stats['threshold']:.2f}", file=sys.stderr)
    return predictor


def model_verdicts(predictor, images: list, batch: int = 16) -> list[tuple[str, str, float | None, list[str]]]:
    """(outcome, reason, ood score, notes) of the Predictor for images the rules accepted."""
    verdicts = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        for p in predictor.predict(chunk, ["M"] * len(chunk), gradcam=False):
            outcome = f"rejected: {p.rejection_code}" if p.rejection else "accepted"
            verdicts.append((outcome, p.rejection or "", p.ood_score, list(p.notes)))
    return verdicts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rsna", default=str(Path(__file__).resolve().parents[2] / "shared/data/rsna-sample"))
    parser.add_argument("--limit", type=int, default=None, help="at most this many RSNA radiographs")
    parser.add_argument("--synthetic", type=int, default=100)
    parser.add_argument("--model", default=None, help="also run the Predictor's checks (orientation, OOD score)")
    parser.add_argument("--model-data", default=None, help="the checkpoint's data folder (default: its data_dir)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--features", default=None, help="write every item's rule features to this CSV")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args(argv)

    predictor = None
    split_of = {}
    if args.model:
        import torch

        torch.set_num_threads(args.threads)
        predictor = load_predictor(args.model, args.model_data, args.cache_dir)
        split_of = {f"{i}.png": name for name, ids in predictor.metadata["split"].items() for i in ids}

    sources = [generated_items(), skimage_items(), pydicom_items(), synthetic_items(args.synthetic)]
    if Path(args.rsna).is_dir():
        sources.append(rsna_items(Path(args.rsna), args.limit))
    items = []  # [group, name, is_hand, outcome, reason]
    rows = []
    notes = collections.Counter()
    waiting = []  # (item, image) the rules accepted, for the Predictor in batches

    def flush():
        verdicts = model_verdicts(predictor, [image for _, image in waiting])
        for (item, _), (outcome, reason, score, item_notes) in zip(waiting, verdicts):
            item[3], item[4] = outcome, reason
            notes.update((item[0], note) for note in item_notes)
        waiting.clear()

    for source in sources:
        for group, name, data, is_hand in source:
            outcome, image, reason = judge(data)
            item = [group, name, is_hand, outcome, reason]
            items.append(item)
            if predictor is not None and outcome == "accepted":
                waiting.append((item, image))
                if len(waiting) >= 16:
                    flush()
            if args.features and image is not None and image.ndim == 2:
                rows.append({"group": group, "name": name, "outcome": outcome, **features(image)})
    if waiting:
        flush()
    items += [[f"real radiograph, {split_of[item[1]]} split of the model", *item[1:]] for item in items
              if item[0] == "real radiograph" and split_of.get(item[1])]

    table = collections.defaultdict(collections.Counter)
    truth = {}
    errors = []
    for group, name, is_hand, outcome, reason in items:
        table[group][outcome] += 1
        truth[group] = is_hand
        if (outcome == "accepted") != is_hand:
            errors.append(f"{group} / {name}: {outcome} {reason[:100]}")

    outcomes = sorted({o for counter in table.values() for o in counter})
    print("| corpus part | should be | n | " + " | ".join(o.removeprefix("rejected: ") for o in outcomes) + " | correct |")
    print("|---|---|---|" + "---|" * len(outcomes) + "---|")
    totals = {True: [0, 0], False: [0, 0]}
    for group, counter in table.items():
        n = sum(counter.values())
        correct = counter["accepted"] if truth[group] else n - counter["accepted"]
        if "split of the model" not in group:
            totals[truth[group]][0] += correct
            totals[truth[group]][1] += n
        print(f"| {group} | {'accepted' if truth[group] else 'rejected'} | {n} | "
              + " | ".join(str(counter.get(o, 0)) for o in outcomes) + f" | {correct / n:.1%} |")
    for is_hand, (correct, n) in totals.items():
        if n:
            print(f"{'hand radiographs accepted' if is_hand else 'non-hand images rejected'}: {correct}/{n} = {correct / n:.1%}")
    if notes:
        print("notes added (orientation):")
        for (group, note), count in sorted(notes.items()):
            print(f"  {group}: {count} x {note}")
    if args.show_errors:
        print("\n".join(errors))
    if args.features:
        import csv

        with open(args.features, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
