"""The synthetic radiograph generator: determinism, the RSNA layout, masks, age signal."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.synth import (
    CARPALS,
    build_hand,
    draw_individual,
    draw_label,
    generate_dataset,
    maturity_months,
    render_hand,
)

SIZE = 128


def render(age: float, male: bool, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    return render_hand(age, male, np.random.default_rng(seed), size)


def mean_mask_fraction(age: float, male: bool, seeds: range, size: int = SIZE) -> float:
    return float(np.mean([(render(age, male, s, size)[1] == 255).mean() for s in seeds]))


def file_digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# ------------------------------------------------------------------------ render_hand


def test_render_returns_uint8_image_and_binary_mask_of_the_requested_size():
    image, mask = render(100, True, seed=0, size=160)
    assert image.shape == mask.shape == (160, 160)
    assert image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}


def test_render_is_deterministic_for_a_seed_and_varies_between_seeds():
    first_image, first_mask = render(130, False, seed=7)
    again_image, again_mask = render(130, False, seed=7)
    other_image, _ = render(130, False, seed=8)
    assert np.array_equal(first_image, again_image)
    assert np.array_equal(first_mask, again_mask)
    assert not np.array_equal(first_image, other_image)


def test_nuisances_use_the_same_random_draws_whatever_the_age_and_sex():
    # Film and pose come from a fixed number of draws, so they cannot depend on age.
    states = set()
    for age, male in [(1, True), (60, False), (150, True), (228, False)]:
        rng = np.random.default_rng(3)
        render_hand(age, male, rng, SIZE)
        states.add(str(rng.bit_generator.state))
    assert len(states) == 1


@pytest.mark.parametrize("age", [1, 24, 96, 168, 228])
def test_mask_covers_a_small_bright_part_of_the_image(age):
    for seed in range(4):
        image, mask = render(age, seed % 2 == 0, seed)
        inside = mask == 255
        assert 0.005 < inside.mean() < 0.40
        assert image[inside].mean() > image[~inside].mean() + 20


# ------------------------------------------------------------------------- age signal


def test_mask_area_grows_with_age():
    seeds = range(6)
    toddlers = mean_mask_fraction(24, True, seeds) + mean_mask_fraction(24, False, seeds)
    adolescents = mean_mask_fraction(180, True, seeds) + mean_mask_fraction(180, False, seeds)
    assert adolescents > 1.8 * toddlers


def test_bright_bone_area_grows_with_age():
    def bright_fraction(age: float) -> float:
        fractions = []
        for seed in range(6):
            image, _ = render(age, seed % 2 == 0, seed)
            background = np.median(image)
            fractions.append((image > background + 0.5 * (image.max() - background)).mean())
        return float(np.mean(fractions))

    assert bright_fraction(180) > 1.5 * bright_fraction(24)


def test_a_girl_looks_more_mature_than_a_boy_of_the_same_bone_age():
    # Same generator state: same pose and film, only the sex differs.
    for age in (36, 72, 120):
        for seed in range(4):
            girl_mask = render(age, False, seed)[1]
            boy_mask = render(age, True, seed)[1]
            assert (girl_mask == 255).sum() > (boy_mask == 255).sum()


def test_carpal_centres_appear_in_order_and_girls_earlier():
    individual = draw_individual(np.random.default_rng(0))
    counts = [build_hand(m, individual).carpals_present for m in range(0, 229, 6)]
    assert counts[0] <= 2
    assert counts[-1] == len(CARPALS)
    assert counts == sorted(counts)
    girl = build_hand(maturity_months(48, male=False), individual).carpals_present
    boy = build_hand(maturity_months(48, male=True), individual).carpals_present
    assert girl > boy


def test_growth_plates_close_in_late_adolescence_girls_first():
    individual = draw_individual(np.random.default_rng(0))

    def open_at(age: float, male: bool) -> int:
        return build_hand(maturity_months(age, male), individual).open_physes

    assert open_at(120, True) == open_at(120, False) == 21  # all 19 hand bones + radius + ulna
    assert open_at(228, True) == 0
    assert open_at(180, False) < open_at(180, True)


# ------------------------------------------------------------------------ the dataset


def test_labels_are_distributed_roughly_like_rsna():
    rng = np.random.default_rng(0)
    labels = [draw_label(rng) for _ in range(3000)]
    ages = np.array([age for age, _ in labels])
    males = np.array([male for _, male in labels])
    assert ages.min() >= 1 and ages.max() <= 228
    assert abs(ages.mean() - 127) < 5
    assert abs(ages.std() - 41) < 5
    assert abs(males.mean() - 0.54) < 0.04


def test_generate_dataset_writes_the_rsna_training_layout(tmp_path):
    out = generate_dataset(tmp_path / "synth", 5, size=SIZE, seed=1, progress=False)
    assert out == tmp_path / "synth"

    with open(out / "boneage-training-dataset.csv", newline="") as fh:
        assert fh.readline() == "id,boneage,male\n"
        fh.seek(0)
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    ids = [int(row["id"]) for row in rows]
    assert len(set(ids)) == 5
    for row in rows:
        assert 1 <= int(row["boneage"]) <= 228
        assert row["male"] in {"True", "False"}

    for image_id in ids:
        for folder in ("boneage-training-dataset", "masks"):
            with Image.open(out / folder / f"{image_id}.png") as image:
                assert image.format == "PNG"
                assert image.mode == "L"
                assert image.size == (SIZE, SIZE)
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(
        p.name for p in (out / "boneage-training-dataset").iterdir()
    )

    notice = (out / "SYNTHETIC.txt").read_text().lower()
    assert "synthetic" in notice and "not real radiographs" in notice
    assert "not for clinical use" in notice


def test_generate_dataset_images_match_render_hand_labels(tmp_path):
    out = generate_dataset(tmp_path, 2, size=SIZE, seed=4, progress=False)
    with open(out / "boneage-training-dataset.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    rng = np.random.default_rng([4, 0])
    age, male = draw_label(rng)
    assert (int(row["boneage"]), row["male"]) == (age, str(male))
    image, mask = render_hand(age, male, rng, SIZE)
    written_image = np.asarray(Image.open(out / "boneage-training-dataset" / f"{row['id']}.png"))
    written_mask = np.asarray(Image.open(out / "masks" / f"{row['id']}.png"))
    assert np.array_equal(written_image, image)
    assert np.array_equal(written_mask, mask)


def test_generate_dataset_is_byte_identical_for_a_seed(tmp_path):
    first = file_digests(generate_dataset(tmp_path / "a", 3, size=SIZE, seed=5, progress=False))
    again = file_digests(generate_dataset(tmp_path / "b", 3, size=SIZE, seed=5, progress=False))
    other = file_digests(generate_dataset(tmp_path / "c", 3, size=SIZE, seed=6, progress=False))
    assert first == again
    assert other["SYNTHETIC.txt"] == first["SYNTHETIC.txt"]
    image = "boneage-training-dataset/100000.png"
    assert other[image] != first[image]
