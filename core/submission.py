"""Checking a submitted study before anything is stored or queued.

parse_submission() returns a Submission or raises InvalidSubmission with one
message per field, written for the person at the form (the API returns the same).
The image is decoded here, once (core.working_image: reduced while decoding to the
working size), so a damaged or truncated file is refused now rather than failing later in
the worker; the decoded working copy travels in the Submission to be stored. A PNG's or
JPEG's metadata (which can name the patient) is stripped here, so Submission.image is what
is stored (services.assessments strips again, for callers that build a Submission).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Mapping

from core.deidentify import strip_raster_metadata
from core.imageio import ImageDecodeError
from core.stages import normalise_sex
from core.working_image import WorkingImage, make_working_image

MAX_AGE_YEARS = 25
MAX_AGE_MONTHS = MAX_AGE_YEARS * 12
DAYS_PER_MONTH = 365.25 / 12
REFERENCE_PATTERN = re.compile(r"^[\w .:/#-]{1,64}$")


@dataclass(frozen=True)
class Submission:
    image: bytes
    sex: str  # "M" | "F"
    chronological_age_months: float | None
    reference: str | None
    # The upload decoded at the working size (None: submit_assessment decodes it).
    working: WorkingImage | None = field(default=None, compare=False, repr=False)


class InvalidSubmission(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(" ".join(errors.values()))


def uploaded_image(files: Mapping) -> bytes | None:
    """The bytes of the `image` field of a multipart request; None when no file was
    chosen (browsers then send an empty part without a filename)."""
    upload = files.get("image")
    if upload is None:
        return None
    data = upload.read()
    if not data and not upload.filename:
        return None
    return data


def parse_submission(form: Mapping[str, str], image: bytes | None) -> Submission:
    errors: dict[str, str] = {}
    image, working = _check(errors, "image", _image, image) or (image, None)
    sex = _check(errors, "sex", _sex, form.get("sex"))
    age = _check(errors, "age", _age, form)
    reference = _check(errors, "reference", _reference, form.get("reference"))
    if errors:
        raise InvalidSubmission(errors)
    return Submission(image=image, sex=sex, chronological_age_months=age, reference=reference, working=working)


def _check(errors: dict[str, str], field: str, parse, value):
    try:
        return parse(value)
    except ValueError as exc:
        errors[field] = str(exc)
        return None


def _image(data: bytes | None) -> tuple[bytes, WorkingImage]:
    """The upload to store (a PNG or JPEG without its metadata: core.deidentify) and its
    working copy."""
    if data is None:
        raise ValueError("Choose a radiograph to upload (PNG, JPEG or DICOM).")
    if not data:
        raise ValueError("The uploaded file is empty. Choose the radiograph's image file.")
    try:
        working = make_working_image(data)
        return strip_raster_metadata(data), working
    except ImageDecodeError as exc:
        raise ValueError(f"The upload is not a readable radiograph: {exc}.") from None


def _sex(value: str | None) -> str:
    if not value or not value.strip():
        raise ValueError("Choose the patient's sex (M or F); bone-age standards differ by sex.")
    try:
        return normalise_sex(value)
    except ValueError:
        raise ValueError(f"Sex must be M or F (got {value.strip()[:20]!r}).") from None


def _age(form: Mapping[str, str]) -> float | None:
    years, months = _blank_to_none(form.get("age_years")), _blank_to_none(form.get("age_months"))
    birth, study = _blank_to_none(form.get("birth_date")), _blank_to_none(form.get("study_date"))
    by_age = years is not None or months is not None
    by_dates = birth is not None or study is not None
    if by_age and by_dates:
        raise ValueError(
            "Give the chronological age either as years and months or as dates, not both."
        )
    if by_age:
        return _age_from_years_months(years, months)
    if by_dates:
        return _age_from_dates(birth, study)
    return None


def _age_from_years_months(years: str | None, months: str | None) -> float:
    y = _whole_number(years or "0", "Age in years")
    m = _whole_number(months or "0", "Age in months")
    if y < 0 or m < 0:
        raise ValueError("The age cannot be negative.")
    if m > 11:
        raise ValueError("Months must be between 0 and 11 (put whole years in the years box).")
    return _within_range(y * 12 + m)


def _age_from_dates(birth: str | None, study: str | None) -> float:
    if birth is None or study is None:
        raise ValueError("Give both the date of birth and the study date (or neither).")
    born, studied = _date(birth, "Date of birth"), _date(study, "Study date")
    if studied < born:
        raise ValueError("The study date is before the date of birth.")
    if studied > date.today() + timedelta(days=1):
        raise ValueError("The study date is in the future.")
    return _within_range(round((studied - born).days / DAYS_PER_MONTH, 2))


def _within_range(months: float) -> float:
    if months > MAX_AGE_MONTHS:
        raise ValueError(
            f"The age must be at most {MAX_AGE_YEARS} years: bone age is assessed in children "
            "and adolescents."
        )
    return float(months)


def _whole_number(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number (got {text.strip()[:20]!r}).") from None


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a date like 2014-03-27 (got {text.strip()[:20]!r}).") from None


def _reference(value: str | None) -> str | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if not REFERENCE_PATTERN.match(value):
        raise ValueError(
            "The reference may have up to 64 letters, digits, spaces and . : / # - _ "
            "(use a pseudonymous study code, never a name)."
        )
    return value


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
