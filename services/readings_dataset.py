"""Readings as training data: the assessments that have readings, exported as a dataset
folder in the RSNA training layout (boneage-training-dataset.csv with id, boneage, male;
boneage-training-dataset/<id>.png), which the training-job service can register and
fine-tune on. The label is the mean of the readings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.errors import UserFacingError
from db.audit_models import SYNTHETIC_REFERENCE_PREFIX

LABELS = "boneage-training-dataset.csv"
IMAGES = "boneage-training-dataset"
SOURCES = "assessments.csv"


def export_readings_dataset(out_dir, *, uow, files, include_synthetic: bool = False) -> dict:
    """Write the dataset into `out_dir` (new or empty); returns a summary."""
    import numpy as np
    from PIL import Image

    from core.imageio import ImageDecodeError, decode_image

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserFacingError(f"{out} is not empty; choose a new folder for the dataset")
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    with uow() as work:
        pairs = work.readings.with_assessments()
    rows, sources, skipped = [], [], []
    for assessment, readings in pairs:
        synthetic = (assessment.reference or "").startswith(SYNTHETIC_REFERENCE_PREFIX) or all(r.synthetic for r in readings)
        if synthetic and not include_synthetic:
            continue
        try:
            pixels = decode_image(files.read(assessment.image_path))
        except (FileNotFoundError, ImageDecodeError) as exc:
            skipped.append({"assessment_id": assessment.id, "reason": str(exc) or type(exc).__name__})
            continue
        image_id = len(rows) + 1
        Image.fromarray((pixels * 255.0).round().astype(np.uint8), mode="L").save(out / IMAGES / f"{image_id}.png")
        label = float(np.mean([r.bone_age_months for r in readings]))
        rows.append((image_id, round(label, 2), "True" if assessment.sex == "M" else "False"))
        sources.append((image_id, assessment.id, len(readings), synthetic))
    if not rows:
        raise UserFacingError("no assessments with readings to export" + ("" if include_synthetic else
                              " (synthetic ones are left out unless asked for)"))
    with open(out / LABELS, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "boneage", "male"))
        writer.writerows(rows)
    with open(out / SOURCES, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "assessment_id", "readings", "synthetic"))
        writer.writerows(sources)
    summary = {"records": len(rows), "skipped": skipped, "synthetic": any(s[3] for s in sources),
               "label": "mean of the readings (months)"}
    (out / "READINGS_DATASET.json").write_text(json.dumps(summary, indent=2))
    if summary["synthetic"]:
        (out / "SYNTHETIC.txt").write_text("Contains synthetic demonstration data: not for clinical use.\n")
    return summary
