"""Reading the RSNA Pediatric Bone Age files in every layout they are published in.

Layouts (shared/reference/README.md, "The RSNA Pediatric Bone Age dataset"):

| split      | labels file                                   | columns                                             | images                                      |
|------------|-----------------------------------------------|-----------------------------------------------------|---------------------------------------------|
| training   | boneage-training-dataset.csv (or train.csv)   | id, boneage, male (True/False, any case)            | boneage-training-dataset/<id>.png           |
| validation | Validation Dataset.csv                        | Image ID, male, Bone Age (months)                   | boneage-validation-dataset-1/ and -2/       |
| test       | Bone age ground truth.xlsx                    | Case ID, Sex (M/F), Ground truth bone age (months)  | boneage-test-dataset/<Case ID>.png          |
| test (Kaggle) | boneage-test-dataset.csv                   | Case ID, Sex (no ages)                              | boneage-test-dataset/<Case ID>.png          |
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserFacingError
from core.stages import normalise_sex


class DatasetError(UserFacingError):
    """A labels file or image that cannot be used; the message names the file and row."""


@dataclass(frozen=True)
class Record:
    id: str
    image_path: Path
    bone_age_months: float | None  # None where the file publishes no age (Kaggle test CSV)
    male: bool

    @property
    def sex(self) -> str:
        return "M" if self.male else "F"


@dataclass(frozen=True)
class Layout:
    labels_names: tuple[str, ...]
    id_column: str
    sex_column: str
    age_column: str | None
    image_dirs: tuple[str, ...]


TRAINING = Layout(
    ("boneage-training-dataset.csv", "train.csv"), "id", "male", "boneage", ("boneage-training-dataset",)
)
VALIDATION = Layout(
    ("Validation Dataset.csv",),
    "Image ID",
    "male",
    "Bone Age (months)",
    ("boneage-validation-dataset-1", "boneage-validation-dataset-2"),
)
TEST = Layout(
    ("Bone age ground truth.xlsx",),
    "Case ID",
    "Sex",
    "Ground truth bone age (months)",
    ("boneage-test-dataset",),
)
TEST_KAGGLE = Layout(("boneage-test-dataset.csv",), "Case ID", "Sex", None, ("boneage-test-dataset",))
LAYOUTS = (TRAINING, VALIDATION, TEST, TEST_KAGGLE)

def load_records(path: str | Path, *, require_age: bool = True) -> list[Record]:
    """Records from a dataset folder (every layout found in it) or from one labels file."""
    path = Path(path)
    if path.is_file():
        layout = _layout_for_file(path)
        records = _read_layout(path, layout, path.parent)
    elif path.is_dir():
        found = [(path / name, layout) for layout in LAYOUTS for name in layout.labels_names if (path / name).is_file()]
        if not found:
            expected = ", ".join(name for layout in LAYOUTS for name in layout.labels_names)
            raise DatasetError(f"{path}: no RSNA labels file found (expected one of: {expected})")
        # A folder with the ground-truth xlsx and the Kaggle test CSV holds the same images twice.
        if any(layout is TEST for _, layout in found):
            found = [(f, layout) for f, layout in found if layout is not TEST_KAGGLE]
        records = [r for labels, layout in found for r in _read_layout(labels, layout, path)]
    else:
        raise DatasetError(f"{path}: no such file or folder")
    if require_age:
        missing = [r.id for r in records if r.bone_age_months is None]
        if missing:
            raise DatasetError(
                f"{path}: {len(missing)} studies have no bone age (e.g. {missing[0]}); "
                "training and evaluation need labelled data"
            )
    if not records:
        raise DatasetError(f"{path}: the labels file lists no studies")
    return records


def _layout_for_file(path: Path) -> Layout:
    for layout in LAYOUTS:
        if path.name in layout.labels_names:
            return layout
    header = _read_rows(path)[0] if path.suffix.lower() != ".xlsx" else []
    for layout in LAYOUTS:
        needed = {layout.id_column, layout.sex_column} | ({layout.age_column} if layout.age_column else set())
        if needed <= set(header):
            return layout
    raise DatasetError(f"{path}: not an RSNA labels file (columns {header})")


def _read_rows(path: Path) -> list[list[str]]:
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).active
        return [["" if v is None else str(v).strip() for v in row] for row in sheet.iter_rows(values_only=True)]
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return [[cell.strip() for cell in row] for row in csv.reader(fh)]


def _read_layout(labels: Path, layout: Layout, root: Path) -> list[Record]:
    rows = _read_rows(labels)
    if not rows:
        raise DatasetError(f"{labels}: the file is empty")
    header, body = rows[0], rows[1:]
    columns = [layout.id_column, layout.sex_column] + ([layout.age_column] if layout.age_column else [])
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(f"{labels}: missing column(s) {missing}; found {header}")
    index = {name: header.index(name) for name in columns}
    images = _image_index(root, layout.image_dirs)
    records = []
    for row_number, row in enumerate(body, start=2):  # row 1 is the header
        if not any(row):
            continue

        def cell(column: str) -> str:
            i = index[column]
            return row[i] if i < len(row) else ""

        where = f"{labels.name}, row {row_number}"
        study_id = _parse_id(cell(layout.id_column), where)
        male = _parse_sex(cell(layout.sex_column), where)
        age = _parse_age(cell(layout.age_column), where) if layout.age_column else None
        image = images.get(study_id)
        if image is None:
            raise DatasetError(
                f"{where}: image {study_id}.png not found in {' or '.join(layout.image_dirs)} under {root}"
            )
        records.append(Record(study_id, image, age, male))
    return records


def _image_index(root: Path, image_dirs: tuple[str, ...]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for name in image_dirs:
        folder = root / name
        if folder.is_dir():
            for image in folder.iterdir():
                if image.suffix.lower() == ".png":
                    index[image.stem] = image
    return index


def _parse_id(value: str, where: str) -> str:
    text = value[:-2] if value.endswith(".0") else value  # xlsx stores ids as floats
    if not text:
        raise DatasetError(f"{where}: the study id is empty")
    return text


def _parse_sex(value: str, where: str) -> bool:
    try:
        return normalise_sex(value) == "M"
    except ValueError:
        raise DatasetError(f"{where}: sex {value!r} is not one of True/False/M/F") from None


def _parse_age(value: str, where: str) -> float:
    try:
        age = float(value)
    except ValueError:
        raise DatasetError(f"{where}: bone age {value!r} is not a number of months") from None
    if not 0 <= age <= 300:
        raise DatasetError(f"{where}: bone age {age} months is outside 0-300")
    return age
