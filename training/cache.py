"""Decode and preprocess every image once; keep the result in memory and on disk.

The cache key covers the files (path, size, mtime) and the preprocessing (with the hand
locator's version when the images are cropped to the hand), so a changed image, recipe or
locator rebuilds it, and two recipes with the same preprocessing share it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import save_atomic
from core.hand import LOCATOR_VERSION
from core.imageio import ImageDecodeError, decode_image
from training.preprocess import Preprocessing, preprocess
from training.rsna import DatasetError, Record


def default_cache_dir() -> Path:
    return Path(os.environ.get("BONEAGE_CACHE_DIR", Path.home() / ".cache" / "boneage"))


def _cache_key(records: Sequence[Record], config: Preprocessing) -> str:
    key = dict(config.__dict__)
    if config.crop != "none":  # a better hand locator makes other squares
        key["locator_version"] = LOCATOR_VERSION
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for record in records:
        stat = record.image_path.stat()
        digest.update(f"{record.image_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def load_image_array(
    records: Sequence[Record], config: Preprocessing, cache_dir: Path | None = None, progress: bool = True
) -> np.ndarray:
    """uint8 (N, size, size), in the order of `records`."""
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    path = cache_dir / f"images-{_cache_key(records, config)}.npy"
    if path.is_file():
        return np.load(path)
    array = np.empty((len(records), config.image_size, config.image_size), dtype=np.uint8)
    for i, record in enumerate(tqdm(records, desc=f"decoding {config.image_size}px", disable=not progress, unit="img")):
        try:
            array[i] = preprocess(decode_image(record.image_path), config)
        except ImageDecodeError as exc:
            raise DatasetError(f"{record.image_path}: {exc}") from exc

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.save(fh, array)

    save_atomic(path, write)
    return array
