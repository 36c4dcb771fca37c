"""The preprocessed image cache (training/cache.py): rebuilt when an image or the
preprocessing changes, reused otherwise, and written only where it is told."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import training.cache as cache
from training.cache import default_cache_dir, load_image_array
from training.preprocess import Preprocessing
from training.rsna import Record

CONFIG = Preprocessing(image_size=32, resize_mode="letterbox", intensity="percentile")


def _write_image(path: Path, seed: int, size: int = 48) -> None:
    pixels = (np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(path)


@pytest.fixture
def records(tmp_path) -> list[Record]:
    folder = tmp_path / "images"
    folder.mkdir()
    found = []
    for i in range(3):
        _write_image(folder / f"{i}.png", seed=i)
        found.append(Record(str(i), folder / f"{i}.png", 12.0 * (i + 1), i % 2 == 0))
    return found


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """The images the cache decoded (a rebuild decodes them all; a reuse decodes none)."""
    seen: list[Path] = []
    real = cache.decode_image

    def counting(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(cache, "decode_image", counting)
    return seen


def _cache_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("images-*.npy")}


def test_cache_is_reused_when_nothing_changed(records, decodes, tmp_path):
    folder = tmp_path / "cache"
    first = load_image_array(records, CONFIG, folder, progress=False)
    assert len(decodes) == 3 and len(_cache_files(folder)) == 1
    again = load_image_array(records, CONFIG, folder, progress=False)
    assert len(decodes) == 3, "the cache was rebuilt although nothing changed"
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3, 32, 32) and first.dtype == np.uint8


def test_cache_is_rebuilt_when_an_image_changes(records, decodes, tmp_path):
    folder = tmp_path / "cache"
    before = load_image_array(records, CONFIG, folder, progress=False)
    _write_image(records[1].image_path, seed=99)
    stat = records[1].image_path.stat()  # a later edit: make sure the mtime moves on coarse clocks
    os.utime(records[1].image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    after = load_image_array(records, CONFIG, folder, progress=False)
    assert len(decodes) == 6, "the cache was not rebuilt after an image changed"
    assert len(_cache_files(folder)) == 2
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert not np.array_equal(after[1], before[1])
    fresh = load_image_array(records, CONFIG, tmp_path / "empty-cache", progress=False)
    np.testing.assert_array_equal(after, fresh)  # the rebuilt array is the new image's


def test_touching_an_image_also_rebuilds(records, decodes, tmp_path):
    """Same bytes, new mtime: rebuilt (the key is path, size and mtime, not the content)."""
    folder = tmp_path / "cache"
    load_image_array(records, CONFIG, folder, progress=False)
    stat = records[0].image_path.stat()
    os.utime(records[0].image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    load_image_array(records, CONFIG, folder, progress=False)
    assert len(decodes) == 6


@pytest.mark.parametrize("changed", [
    Preprocessing(image_size=24, resize_mode="letterbox", intensity="percentile"),
    Preprocessing(image_size=32, resize_mode="resize_crop", intensity="percentile"),
    Preprocessing(image_size=32, resize_mode="letterbox", intensity="raw"),
    Preprocessing(image_size=32, resize_mode="letterbox", intensity="percentile", crop="hand"),
])
def test_cache_is_rebuilt_when_the_preprocessing_changes(records, decodes, tmp_path, changed):
    folder = tmp_path / "cache"
    load_image_array(records, CONFIG, folder, progress=False)
    other = load_image_array(records, changed, folder, progress=False)
    assert len(decodes) == 6, f"the cache built for {CONFIG} was reused for {changed}"
    assert other.shape == (3, changed.image_size, changed.image_size)
    np.testing.assert_array_equal(other, load_image_array(records, changed, tmp_path / "fresh", progress=False))
    load_image_array(records, CONFIG, folder, progress=False)  # both stay cached side by side
    load_image_array(records, changed, folder, progress=False)
    assert len(decodes) == 9 and len(_cache_files(folder)) == 2


def test_a_new_hand_locator_rebuilds_the_cropped_cache_only(records, decodes, tmp_path, monkeypatch):
    import training.cache

    cropped = Preprocessing(image_size=32, resize_mode="letterbox", intensity="percentile", crop="hand")
    folder = tmp_path / "cache"
    load_image_array(records, CONFIG, folder, progress=False)
    load_image_array(records, cropped, folder, progress=False)
    monkeypatch.setattr(training.cache, "LOCATOR_VERSION", training.cache.LOCATOR_VERSION + 1)
    load_image_array(records, CONFIG, folder, progress=False)  # whole films: still cached
    assert len(decodes) == 6
    load_image_array(records, cropped, folder, progress=False)
    assert len(decodes) == 9


def test_a_different_record_set_gets_its_own_cache(records, decodes, tmp_path):
    folder = tmp_path / "cache"
    load_image_array(records, CONFIG, folder, progress=False)
    subset = load_image_array(records[:2], CONFIG, folder, progress=False)
    assert subset.shape[0] == 2 and len(decodes) == 5


def test_default_cache_dir_is_not_in_home_during_tests(tmp_path_factory):
    """tests/conftest.py points BONEAGE_CACHE_DIR at the session's temporary directory."""
    folder = default_cache_dir()
    assert folder == Path(os.environ["BONEAGE_CACHE_DIR"])
    assert folder.is_relative_to(tmp_path_factory.getbasetemp())
    for name in ("TORCH_HOME", "MPLCONFIGDIR"):
        assert Path(os.environ[name]).is_relative_to(tmp_path_factory.getbasetemp()), name
