"""The RSNA loader on small files in every published layout, and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import RSNA_SAMPLE
from training.rsna import DatasetError, load_records


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 32), 128, dtype=np.uint8)).save(path)


def _training_layout(root: Path, labels_name="boneage-training-dataset.csv", male_values=("True", "False")) -> Path:
    (root / labels_name).write_text(f"id,boneage,male\n1377,180,{male_values[0]}\n1378,12,{male_values[1]}\n")
    for study in ("1377", "1378"):
        _png(root / "boneage-training-dataset" / f"{study}.png")
    return root


def test_training_csv(tmp_path):
    records = load_records(_training_layout(tmp_path))
    assert [(r.id, r.bone_age_months, r.male, r.sex) for r in records] == [
        ("1377", 180.0, True, "M"), ("1378", 12.0, False, "F")]
    assert records[0].image_path == tmp_path / "boneage-training-dataset" / "1377.png"


def test_official_train_csv_name_with_upper_case_booleans(tmp_path):
    records = load_records(_training_layout(tmp_path, "train.csv", ("TRUE", "FALSE")))
    assert [r.male for r in records] == [True, False]


def test_labels_file_path_instead_of_folder(tmp_path):
    _training_layout(tmp_path)
    assert len(load_records(tmp_path / "boneage-training-dataset.csv")) == 2


def test_validation_layout_reads_both_image_folders(tmp_path):
    (tmp_path / "Validation Dataset.csv").write_text("Image ID,male,Bone Age (months)\n1386,FALSE,30\n1392,TRUE,162\n")
    _png(tmp_path / "boneage-validation-dataset-1" / "1386.png")
    _png(tmp_path / "boneage-validation-dataset-2" / "1392.png")
    records = load_records(tmp_path)
    assert [(r.id, r.bone_age_months, r.male) for r in records] == [("1386", 30.0, False), ("1392", 162.0, True)]
    assert records[1].image_path.parent.name == "boneage-validation-dataset-2"


def test_test_set_ground_truth_xlsx(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Case ID", "Sex", "Ground truth bone age (months)"])
    sheet.append([4360, "M", 168.93])
    sheet.append([4361, "f", 169.65])
    book.save(tmp_path / "Bone age ground truth.xlsx")
    for study in ("4360", "4361"):
        _png(tmp_path / "boneage-test-dataset" / f"{study}.png")
    (tmp_path / "boneage-test-dataset.csv").write_text("Case ID,Sex\n4360,M\n4361,F\n")
    records = load_records(tmp_path)  # the xlsx wins over the Kaggle CSV of the same images
    assert [(r.id, r.male, r.bone_age_months) for r in records] == [("4360", True, 168.93), ("4361", False, 169.65)]


def test_kaggle_test_csv_has_no_ages(tmp_path):
    (tmp_path / "boneage-test-dataset.csv").write_text("Case ID,Sex\n4360,M\n")
    _png(tmp_path / "boneage-test-dataset" / "4360.png")
    [record] = load_records(tmp_path, require_age=False)
    assert record.bone_age_months is None and record.male
    with pytest.raises(DatasetError, match="no bone age"):
        load_records(tmp_path)


@pytest.mark.parametrize(
    "csv_text, message",
    [
        ("id,male\n1377,True\n", r"missing column\(s\) \['boneage'\]"),
        ("id,boneage,male\n1377,abc,True\n", r"boneage-training-dataset.csv, row 2: bone age 'abc' is not a number"),
        ("id,boneage,male\n1377,180,True\n1378,12,yes\n", r"row 3: sex 'yes' is not one of"),
        ("id,boneage,male\n1377,180,True\n9999,12,False\n", r"row 3: image 9999.png not found"),
        ("id,boneage,male\n1377,-4,True\n", r"row 2: bone age -4.0 months is outside"),
    ],
)
def test_errors_name_the_file_and_row(tmp_path, csv_text, message):
    _training_layout(tmp_path)
    (tmp_path / "boneage-training-dataset.csv").write_text(csv_text)
    with pytest.raises(DatasetError, match=message):
        load_records(tmp_path)


def test_folder_without_labels(tmp_path):
    with pytest.raises(DatasetError, match="no RSNA labels file found"):
        load_records(tmp_path)


def test_reads_the_real_sample_when_present():
    sample = RSNA_SAMPLE
    if not sample.is_dir():
        pytest.skip(f"the real RSNA sample is not at {sample}")
    records = load_records(sample)
    assert len(records) == 911
    assert sum(r.male for r in records) == 494
