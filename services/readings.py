"""Readings: a qualified reader's bone age for an assessment (the audit's ground truth).

add_reading stores one reading; import_readings_csv stores a whole file or nothing:
every row is checked first (unknown assessment, impossible age, duplicate reading,
missing reader, bad method or date) and any refused row refuses the file, with one
reason per row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from core.audit_rules import READING_METHODS, check_reading_months
from core.errors import UserFacingError
from db.audit_models import Reading

MAX_READER_LENGTH = 64
CSV_COLUMNS = "assessment (id or reference), bone_age_months, reader[, method, read_at]"


class InvalidReading(UserFacingError):
    """A refused reading; `fields` maps each input to what is wrong with it."""

    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        super().__init__(" ".join(fields.values()))


@dataclass
class ImportReport:
    rows: int
    imported: int
    errors: list[dict] = field(default_factory=list)  # {"row": n (1 = first data row), "error": text}

    @property
    def ok(self) -> bool:
        return not self.errors


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_reading(values: dict, *, now: datetime) -> dict:
    """{bone_age_months, reader, method, read_at} from user input; InvalidReading otherwise.
    The bone age may be given as bone_age_months, or as bone_age_years (+ bone_age_extra_months)."""
    errors: dict[str, str] = {}
    months = _months(values, errors)
    reader = str(values.get("reader") or "").strip()
    if not reader:
        errors["reader"] = "The reader (a pseudonymous id, e.g. R1) is required."
    elif len(reader) > MAX_READER_LENGTH:
        errors["reader"] = f"The reader id may have at most {MAX_READER_LENGTH} characters."
    method = str(values.get("method") or "GP").strip()
    matched = {m.lower(): m for m in READING_METHODS}.get(method.lower())
    if matched is None:
        errors["method"] = f"The method must be one of {', '.join(READING_METHODS)}, got {method!r}."
    read_at = now
    raw_time = str(values.get("read_at") or "").strip()
    if raw_time:
        try:
            read_at = datetime.fromisoformat(raw_time)
            read_at = read_at.replace(tzinfo=timezone.utc) if read_at.tzinfo is None else read_at.astimezone(timezone.utc)
        except ValueError:
            errors["read_at"] = f"read_at must be an ISO date or date-time, got {raw_time!r}."
        else:
            if read_at > now:
                errors["read_at"] = "read_at is in the future."
    if errors:
        raise InvalidReading(errors)
    return {"bone_age_months": months, "reader": reader, "method": matched, "read_at": read_at}


def _months(values: dict, errors: dict[str, str]) -> float | None:
    raw = values.get("bone_age_months")
    if raw in (None, "") and values.get("bone_age_years") not in (None, ""):
        try:
            value = float(values["bone_age_years"]) * 12 + float(values.get("bone_age_extra_months") or 0)
        except (TypeError, ValueError):
            errors["bone_age_months"] = "The bone age must be a number of years and months."
            return None
    elif raw in (None, ""):
        errors["bone_age_months"] = "The reader's bone age (months) is required."
        return None
    else:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            errors["bone_age_months"] = f"The bone age must be a number of months, got {raw!r}."
            return None
    if isinstance(raw, bool):
        errors["bone_age_months"] = "The bone age must be a number of months."
        return None
    try:
        return check_reading_months(value)
    except ValueError as exc:
        errors["bone_age_months"] = f"Impossible age: {exc}."
        return None


def add_reading(assessment_id: str, values: dict, *, uow, clock: Callable[[], datetime] = utcnow,
                synthetic: bool = False) -> Reading:
    """Store one reading for an assessment; InvalidReading (nothing stored) when refused."""
    parsed = parse_reading(values, now=clock())
    with uow() as work:
        if work.assessments.get(assessment_id) is None:
            raise InvalidReading({"assessment": f"There is no assessment with id {assessment_id[:40]!r}."})
        if parsed["reader"] in work.readings.readers_of(assessment_id):
            raise InvalidReading({"reader": f"Reader {parsed['reader']!r} already has a reading for this assessment."})
        reading = work.readings.add(Reading(assessment_id=assessment_id, created_at=clock(), synthetic=synthetic,
                                            **parsed))
        work.commit()
        return reading


def import_readings_csv(text: str, *, uow, clock: Callable[[], datetime] = utcnow) -> ImportReport:
    """Import every row of a CSV (header: assessment or assessment_id or reference,
    bone_age_months, reader, optional method and read_at), or none of them."""
    now = clock()
    try:
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    except csv.Error as exc:
        return ImportReport(0, 0, [{"row": 0, "error": f"The file is not a readable CSV: {exc}."}])
    header = {name.strip().lower() for name in (rows[0].keys() if rows else _header(text)) if name}
    missing = [name for name in ("bone_age_months", "reader") if name not in header]
    if not header & {"assessment", "assessment_id", "reference"}:
        missing.insert(0, "assessment (id) or reference")
    if missing:
        return ImportReport(len(rows), 0, [{"row": 0, "error": f"Missing column(s): {', '.join(missing)}. "
                                            f"Expected: {CSV_COLUMNS}."}])
    if not rows:
        return ImportReport(0, 0, [{"row": 0, "error": "The file has no rows."}])

    errors: list[dict] = []
    accepted: list[tuple[str, dict]] = []
    seen: dict[tuple[str, str], int] = {}
    with uow() as work:
        for number, raw in enumerate(rows, start=1):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            if None in raw:
                errors.append({"row": number, "error": "The row has more fields than the header."})
                continue
            problems: list[str] = []
            assessment_id = _resolve(work, row, problems)
            try:
                parsed = parse_reading(row, now=now)
            except InvalidReading as exc:
                problems += exc.fields.values()
                parsed = None
            if assessment_id and parsed:
                key = (assessment_id, parsed["reader"])
                if key in seen:
                    problems.append(f"Duplicate: row {seen[key]} already has reader {parsed['reader']!r} "
                                    "for this assessment.")
                elif parsed["reader"] in work.readings.readers_of(assessment_id):
                    problems.append(f"Duplicate: reader {parsed['reader']!r} already has a reading for "
                                    "this assessment.")
                else:
                    seen[key] = number
            if problems:
                errors.append({"row": number, "error": " ".join(problems)})
            else:
                accepted.append((assessment_id, parsed))
        if errors:
            return ImportReport(len(rows), 0, errors)
        for assessment_id, parsed in accepted:
            work.readings.add(Reading(assessment_id=assessment_id, created_at=now, **parsed))
        work.commit()
    return ImportReport(len(rows), len(accepted))


def _header(text: str) -> list[str]:
    first = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    return [name.strip().lower() for name in first]


def _resolve(work, row: dict, problems: list[str]) -> str | None:
    """The assessment a row names, by id or by reference."""
    key = row.get("assessment_id") or row.get("assessment") or ""
    if key:
        if len(key) <= 32 and work.assessments.get(key) is not None:
            return key
        if "assessment_id" in row and row.get("assessment_id"):
            problems.append(f"Unknown assessment {key[:40]!r}.")
            return None
    reference = row.get("reference") or (key if key else "")
    if not reference:
        problems.append("The row names no assessment (id or reference).")
        return None
    found = work.readings.assessment_ids_by_reference(reference)
    if not found:
        problems.append(f"Unknown assessment {reference[:40]!r} (no id or reference matches).")
        return None
    if len(found) > 1:
        problems.append(f"Reference {reference[:40]!r} names {len(found)} assessments; use the assessment id.")
        return None
    return found[0]

