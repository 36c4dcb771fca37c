"""DICOM as radiology sends it: the pixels a reader would see, and the header's
patient sex and dates for the submission form.

decode_dicom(data) turns a CR or DX image (or a grayscale secondary capture) into a
float32 (H, W) array in [0, 1] with bone bright, as a viewing station would show it:

1. the stored values (8, 12 or 16 bits, signed or not) are decoded by pydicom;
2. the Modality LUT is applied (Rescale Slope/Intercept, or a Modality LUT Sequence):
   `pydicom.pixels.apply_modality_lut`;
3. the VOI LUT is applied (a VOI LUT Sequence, else Window Center/Width with the VOI LUT
   Function): `pydicom.pixels.apply_voi_lut`; the result is scaled so the VOI's output
   range is [0, 1] (values the window clips stay clipped). Without a VOI LUT the
   image's own minimum and maximum are the range;
4. MONOCHROME1 (low values shown white) is inverted, so bone is bright as in MONOCHROME2.

Refused with an ImageDecodeError that says what to send instead: a file pydicom cannot
parse, an object without an image (structured reports, RT structure sets, waveforms,
presentation states...), several frames (a cine or a volume), colour (RGB, YBR or palette:
a hand radiograph is grayscale, and a colour secondary capture is a screenshot or a photo
of one), a digital X-ray "for processing" (raw detector values: the "for presentation"
image is the one to send), an image whose header says it has burned-in annotation (text in the pixels that
may name the patient: DICOM PS3.15's basic profile says not to keep such an instance), and
a compressed transfer syntax no installed decoder reads. With python-gdcm installed (a
project dependency) pydicom decodes JPEG Lossless, JPEG-LS, JPEG 2000, 8-bit JPEG and RLE;
12-bit JPEG (Extended, Process 4) is the one PACS export nothing here decodes.

dicom_tags(data) reads the patient's sex, birth date and the study date (else the
acquisition, series or content date) and the chronological age at the study; a tag that
is missing or malformed is None, never an error.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np

from core.imageio import MAX_PIXELS, MIN_SIDE, ImageDecodeError
from core.submission import DAYS_PER_MONTH, MAX_AGE_MONTHS

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
# Digital X-ray, mammography and intra-oral images "for processing": raw detector values
# that a viewing station does not show; the modality also sends them "for presentation".
FOR_PROCESSING_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.2.1",
                              "1.2.840.10008.5.1.4.1.1.1.3.1")
IMAGE_DATA_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
STUDY_DATE_TAGS = ("StudyDate", "AcquisitionDate", "SeriesDate", "ContentDate")
AGE_UNITS_IN_MONTHS = {"D": 1 / DAYS_PER_MONTH, "W": 7 / DAYS_PER_MONTH, "M": 1.0, "Y": 12.0}


def read_dataset(data: bytes, *, pixels: bool = True):
    """The parsed DICOM dataset; ImageDecodeError when pydicom cannot parse it."""
    import pydicom

    quiet_pydicom_validation()
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad files
        raise ImageDecodeError(f"the DICOM file cannot be read ({_short(exc)})") from exc


def quiet_pydicom_validation() -> None:
    """pydicom warns and logs a malformed value with the value itself ("Invalid value for
    VR DA: '...'"), which would write a patient's name or birth date into the web and worker
    logs. Values are not validated when read (this process-wide setting changes nothing
    else); the values this service uses are checked where they are read."""
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE


def decode_dicom(data: bytes) -> np.ndarray:
    """The image as a reader sees it: float32 (H, W) in [0, 1], bone bright."""
    dataset = read_dataset(data)
    problem = refusal(dataset)
    if problem is not None:
        raise ImageDecodeError(problem)
    stored = _stored_values(dataset)
    try:
        return _displayed(stored, dataset)
    except Exception as exc:  # noqa: BLE001 - a malformed LUT or window
        raise ImageDecodeError(
            f"the DICOM file's modality or VOI LUT (window) cannot be applied ({_short(exc)}); "
            "export the image again from the PACS"
        ) from exc


def refusal(dataset) -> str | None:
    """Why this dataset is not one radiograph the service can read (from the header
    alone), or None."""
    if not any(tag in dataset for tag in IMAGE_DATA_TAGS):
        return (f"the DICOM file holds no image ({_object_kind(dataset)} without pixel data). "
                "Send the hand radiograph itself (a CR or DX image)")
    frames = _int(dataset.get("NumberOfFrames")) or 1
    if frames > 1:
        return (f"the DICOM file holds {frames} frames (a cine loop, a series or a volume), not one radiograph. "
                "Send the single hand radiograph (one CR or DX image)")
    photometric = str(dataset.get("PhotometricInterpretation", "") or "").upper().strip()
    samples = _int(dataset.get("SamplesPerPixel")) or 1
    if samples == 1 and not photometric:
        return ("the DICOM image does not say how its pixels are shown (no Photometric Interpretation); "
                "the file is damaged. Export the image again from the PACS")
    if samples != 1 or photometric not in GRAYSCALE:
        return (f"the DICOM image is in colour ({photometric or f'{samples} samples per pixel'}); a hand "
                "radiograph is grayscale (MONOCHROME1 or MONOCHROME2). Send the original CR or DX image, "
                "not a screenshot or a photograph of it")
    sop_class = str(dataset.get("SOPClassUID", "")
                    or getattr(dataset, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    intent = str(dataset.get("PresentationIntentType", "") or "").upper().strip()
    if sop_class in FOR_PROCESSING_SOP_CLASSES or intent == "FOR PROCESSING":
        return ("the DICOM image is 'for processing' (raw detector values, not what a reader sees). "
                "Send the 'for presentation' image of the same radiograph")
    if str(dataset.get("BurnedInAnnotation", "") or "").upper().strip() == "YES":
        return ("the DICOM header says the image has burned-in annotation (text in the pixels, which may "
                "identify the patient), so it cannot be stored. Export the radiograph without burned-in "
                "annotation")
    rows, columns = _int(dataset.get("Rows")), _int(dataset.get("Columns"))
    if rows is None or columns is None:
        return "the DICOM image has no Rows or Columns; the file is damaged. Export the image again"
    if rows * columns > MAX_PIXELS:
        return (f"the image is too large: {columns}x{rows} pixels, more than the {MAX_PIXELS:,} allowed; "
                "downscale it before uploading")
    if min(rows, columns) < MIN_SIDE:
        return f"the image is only {columns}x{rows} pixels; a radiograph needs at least {MIN_SIDE} pixels a side"
    return None


def _stored_values(dataset) -> np.ndarray:
    try:
        array = dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing decoder plugin, truncated data, bad header
        syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
        if syntax is not None and syntax.is_compressed:
            cause = "no decoder for it is installed" if _no_decoder(syntax) else _decoder_failure(exc)
            raise ImageDecodeError(
                f"the DICOM image is compressed as {syntax.name} and cannot be decoded here ({cause}); "
                "export it uncompressed (Explicit VR Little Endian)"
            ) from exc
        raise ImageDecodeError(f"the DICOM file has no readable image ({_short(exc)})") from exc
    if array.ndim != 2:
        raise ImageDecodeError(f"the DICOM image has shape {array.shape}, not one grayscale image")
    return array


def _displayed(stored: np.ndarray, dataset) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float64)
    if _has_voi(dataset):
        if dataset.get("VOILUTSequence"):  # a lookup table is indexed by whole numbers
            values = np.round(values).astype(np.int64)
            _widen_8_bit_voi_luts(dataset)
        # The VOI's output range: what it maps values far below and far above the window to.
        probe = np.array([values.min() - 2**20, values.max() + 2**20], dtype=values.dtype)
        extremes = np.asarray(apply_voi_lut(probe, dataset), dtype=np.float64)
        shown = np.asarray(apply_voi_lut(values, dataset), dtype=np.float64)
        lo, hi = float(extremes.min()), float(extremes.max())
    else:
        shown = values
        lo, hi = float(values.min()), float(values.max())
    image = np.clip((shown - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(shown)
    if str(dataset.PhotometricInterpretation).upper().strip() == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def _widen_8_bit_voi_luts(dataset) -> None:
    """pydicom 3.0's apply_voi indexes a LUT whose entries are 8 bits with uint8 indexes,
    so a table longer than 256 entries wraps around; declared as 16-bit entries (the
    values are unchanged, and pydicom reads the data the same way) it indexes correctly."""
    for item in dataset.VOILUTSequence:
        descriptor = item.get("LUTDescriptor")
        if descriptor is not None and len(descriptor) == 3 and descriptor[2] == 8 and (descriptor[0] or 65536) > 256:
            item.LUTDescriptor = [descriptor[0], descriptor[1], 16]


def _has_voi(dataset) -> bool:
    sequence = dataset.get("VOILUTSequence")
    if sequence and sequence[0].get("LUTDescriptor") is not None and sequence[0].get("LUTData") is not None:
        return True
    return dataset.get("WindowCenter") is not None and dataset.get("WindowWidth") is not None


def _no_decoder(syntax) -> bool:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except Exception:  # noqa: BLE001 - no decoder registered for this syntax at all
        return True
    return not decoder.is_available


def _object_kind(dataset) -> str:
    from pydicom.uid import UID

    sop_class = dataset.get("SOPClassUID") or getattr(dataset, "file_meta", {}).get("MediaStorageSOPClassUID")
    modality = str(dataset.get("Modality", "") or "").strip()
    name = UID(str(sop_class)).name if sop_class else ""
    if name and name != str(sop_class):
        return f"a {name} object" + (f" (modality {modality})" if modality else "")
    return f"a {modality} object" if modality else "an object"


# ---------------------------------------------------------------- tags for the form


@dataclass(frozen=True)
class DicomTags:
    """What the header says about the patient and the study (None when it does not)."""

    sex: str | None  # "M" | "F"
    birth_date: date | None
    study_date: date | None
    chronological_age_months: float | None
    modality: str | None
    photometric_interpretation: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def dicom_tags(data: bytes) -> DicomTags:
    """The header's sex, dates and age at the study; ImageDecodeError only when the file
    is not a DICOM file pydicom can parse."""
    return _tags_of(read_dataset(data, pixels=False))


def tags_for_form(data: bytes) -> DicomTags:
    """dicom_tags for the submission form: ImageDecodeError, with what to do, when the file
    is not DICOM or is one the service refuses (refusal), so the person learns it now."""
    from core.imageio import is_dicom

    if not is_dicom(data):
        raise ImageDecodeError("the file is not a DICOM file, so there is no header to read the sex and age from; "
                               "enter them in the form")
    dataset = read_dataset(data)
    problem = refusal(dataset)
    if problem is not None:
        raise ImageDecodeError(problem)
    return _tags_of(dataset)


def _tags_of(dataset) -> DicomTags:
    birth = _date(dataset.get("PatientBirthDate"))
    study = next((day for day in (_date(dataset.get(tag)) for tag in STUDY_DATE_TAGS) if day), None)
    return DicomTags(
        sex=_sex(dataset.get("PatientSex")),
        birth_date=birth,
        study_date=study,
        chronological_age_months=_age_months(birth, study, dataset.get("PatientAge")),
        modality=_text(dataset.get("Modality")),
        photometric_interpretation=_text(dataset.get("PhotometricInterpretation")),
    )


def _sex(value) -> str | None:
    text = (_text(value) or "").upper()
    return text if text in ("M", "F") else None  # "O" (other) and blanks: the person chooses


def _date(value) -> date | None:
    text = (_text(value) or "").replace(".", "").replace("-", "")  # DA: YYYYMMDD; YYYY.MM.DD, YYYY-MM-DD seen
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _age_months(birth: date | None, study: date | None, patient_age) -> float | None:
    if birth is not None and study is not None:
        months = round((study - birth).days / DAYS_PER_MONTH, 2)
    else:  # Patient's Age (AS), e.g. "010Y", "007M": kept by some de-identified exports
        match = re.fullmatch(r"(\d{3})([DWMY])", _text(patient_age) or "")
        months = round(int(match.group(1)) * AGE_UNITS_IN_MONTHS[match.group(2)], 2) if match else None
    if months is None or not 0 <= months <= MAX_AGE_MONTHS:
        return None
    return float(months)


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decoder_failure(exc: Exception) -> str:
    """Why the installed decoders failed: pydicom puts each plugin's reason on a line of its
    own under "...raised by all available plugins:" (e.g. "gdcm: GDCM does not support
    'JPEG Extended' for samples with 12-bit precision")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return "; ".join(lines[1:])[:300]
    return _short(exc)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
