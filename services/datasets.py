"""Dataset use cases: register a folder (in an RSNA layout the loader reads) under the
data root, list them.

Registration resolves the path (symlinks included) and refuses anything outside
BONEAGE_DATA_DIR, so the web can never be used to read arbitrary files; the loader
then validates every row (its errors name the file and row). A dataset built from
the service's own confirmed readings (the readings issue) will be registered with
source="readings" through the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.errors import Conflict, NotFound, UserFacingError
from db.models import Dataset

AGE_BANDS = ((0, 48, "0-4 y"), (48, 96, "4-8 y"), (96, 144, "8-12 y"), (144, 180, "12-15 y"), (180, 10_000, "15+ y"))
MAX_NAME = 100


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    path: str  # relative to the data root
    source: str
    synthetic: bool
    n_records: int
    summary: dict
    registered_by: str | None
    created_at: datetime
    created: bool = False


def dataset_folder(path: str | Path, data_root: Path) -> Path:
    """The folder `path` names (relative to the data root, or absolute), refused unless
    it lies under the data root once symlinks and '..' are resolved."""
    root = Path(data_root).resolve()
    raw = str(path).strip()
    if not raw:
        raise UserFacingError("give the dataset's folder, relative to the data root")
    try:
        candidate = Path(raw).expanduser()
        folder = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, loops, a user that does not exist
        raise UserFacingError(f"{raw[:80]!r} is not a usable folder name ({type(exc).__name__})") from None
    if folder == root or root not in folder.parents:
        raise UserFacingError(f"{raw!r} is outside the data root {root}: datasets must be folders under it "
                              "(BONEAGE_DATA_DIR)")
    if not folder.is_dir():
        raise UserFacingError(f"{raw!r}: there is no folder {folder.relative_to(root)} under the data root {root}")
    return folder


def summarise(records) -> dict:
    """Counts, the sex mix and the age distribution of loaded records."""
    ages = sorted(r.bone_age_months for r in records)
    males = sum(1 for r in records if r.male)
    bands = [{"band": label, "n": sum(1 for a in ages if lo <= a < hi)} for lo, hi, label in AGE_BANDS]
    return {
        "n": len(ages),
        "male": males,
        "female": len(ages) - males,
        "age_months_min": round(ages[0], 1),
        "age_months_max": round(ages[-1], 1),
        "age_months_mean": round(sum(ages) / len(ages), 1),
        "age_bands": bands,
    }


def register_dataset(path: str | Path, *, uow, data_root: Path, name: str | None = None, by: str | None = None,
                     loader=None) -> DatasetInfo:
    """Validate the folder with the loader and register it; registering the same folder
    again returns the existing dataset. Raises UserFacingError (the loader's messages
    name the file and row) and Conflict (the name belongs to another folder)."""
    folder = dataset_folder(path, data_root)
    relative = str(folder.relative_to(Path(data_root).resolve()))
    name = (name or "").strip() or folder.name
    if len(name) > MAX_NAME or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserFacingError(f"dataset name {name[:MAX_NAME]!r}: use up to {MAX_NAME} letters, digits, '-', '_', '.'")
    if loader is None:
        from training.rsna import load_records as loader
    records = loader(folder)
    with uow() as work:
        existing = work.datasets.get_by_path(relative)
        if existing is not None:
            return _info(existing)
        if work.datasets.get_by_name(name) is not None:
            raise Conflict(f"a dataset named {name!r} is already registered for another folder; choose another name")
        dataset = work.datasets.add(Dataset(
            name=name, path=relative, source="folder", synthetic=(folder / "SYNTHETIC.txt").is_file(),
            n_records=len(records), summary=summarise(records), registered_by=by))
        work.commit()
        return _info(dataset, created=True)


def list_datasets(*, uow) -> list[DatasetInfo]:
    with uow() as work:
        return [_info(d) for d in work.datasets.all()]


def get_dataset(name: str, *, uow) -> DatasetInfo:
    with uow() as work:
        dataset = work.datasets.get_by_name(name)
        if dataset is None:
            raise NotFound(_unknown(name, work))
        return _info(dataset)


def _unknown(name: str, work) -> str:
    known = ", ".join(d.name for d in work.datasets.all()) or "none; register one first"
    return f"no dataset named {name!r} is registered (registered: {known})"


def _info(d: Dataset, created: bool = False) -> DatasetInfo:
    return DatasetInfo(id=d.id, name=d.name, path=d.path, source=d.source, synthetic=d.synthetic,
                       n_records=d.n_records, summary=dict(d.summary or {}), registered_by=d.registered_by,
                       created_at=d.created_at, created=created)
