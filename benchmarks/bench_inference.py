"""Inference speed of the Predictor the workers use: images per second at batch 1 and
16, with and without Grad-CAM, plus decode time.

    python benchmarks/bench_inference.py --model bench-out/real/default/model.pt \
        --images ../shared/data/rsna-sample/boneage-training-dataset --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import torch

from core.imageio import decode_image
from training.predict import Predictor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="folder of PNGs")
    parser.add_argument("--count", type=int, default=48, help="images per measurement")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(args.images.glob("*.png"))[: args.count]
    started = time.perf_counter()
    images = [decode_image(p) for p in paths]
    decode_s = (time.perf_counter() - started) / len(paths)
    predictor = Predictor.from_checkpoint(args.model)
    sexes = list(itertools.islice(itertools.cycle("MF"), len(images)))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {predictor.device}")
    print(f"model: {predictor.model_version} ({predictor.recipe.image_size} px, TTA {predictor.recipe.tta})")
    print(f"decode: {1 / decode_s:.1f} images/s ({decode_s * 1000:.1f} ms per image, {len(paths)} real PNGs)")
    print(f"{'batch':>5} {'Grad-CAM':>8} {'images/s':>9} {'ms/image':>9}")
    for batch, gradcam in itertools.product((1, 16), (False, True)):
        predictor.predict(images[:batch], sexes[:batch], gradcam=gradcam)  # warm-up
        started = time.perf_counter()
        done = 0
        for i in range(0, len(images) - batch + 1, batch):
            predictor.predict(images[i : i + batch], sexes[i : i + batch], gradcam=gradcam)
            done += batch
        seconds = time.perf_counter() - started
        print(f"{batch:>5} {'yes' if gradcam else 'no':>8} {done / seconds:>9.1f} {1000 * seconds / done:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
