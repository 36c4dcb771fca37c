"""De-identification of uploads before anything is written to disk.

A DICOM study is rebuilt with only what the service needs: the pixel data, the tags
that say how to read it, and the few clinical tags a bone-age reading can use (sex,
age in years, body part, laterality, modality). Names, ids, birth dates, dates,
institutions, private tags and everything else are dropped. PNG and JPEG carry no
patient tags the service reads and are stored as they are.
"""

from __future__ import annotations

import io

from core.imageio import ImageDecodeError, is_dicom

# Tags that describe the pixels (PS3.3 Image Pixel module) and the clinical ones kept.
PIXEL_TAGS = (
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth",
    "PixelSpacing", "ImagerPixelSpacing", "LossyImageCompression", "PixelData",
)
CLINICAL_TAGS = ("PatientSex", "PatientAge", "BodyPartExamined", "Laterality", "ImageLaterality", "Modality",
                 "ViewPosition")
KEPT_TAGS = PIXEL_TAGS + CLINICAL_TAGS


def deidentify(data: bytes) -> bytes:
    """The bytes to store for an upload: DICOM reduced to KEPT_TAGS, anything else unchanged."""
    if not is_dicom(data):
        return data
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    try:
        source = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # pydicom raises many types for bad files
        raise ImageDecodeError(f"the DICOM file cannot be read ({exc})") from exc
    reduced = Dataset()
    for keyword in KEPT_TAGS:
        if keyword in source:
            reduced[keyword] = source[keyword]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = source.file_meta.get("MediaStorageSOPClassUID", pydicom.uid.SecondaryCaptureImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()  # the original UID could be traced back
    meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
    reduced.file_meta = meta
    reduced.SOPClassUID = meta.MediaStorageSOPClassUID
    reduced.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    buffer = io.BytesIO()
    reduced.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
