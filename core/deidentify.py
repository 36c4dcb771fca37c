"""De-identification of uploads before anything is written to disk.

A DICOM study is rebuilt from nothing but what the service needs (a clean-slate reading
of DICOM PS3.15 Annex E's Basic Application Level Confidentiality Profile: every
attribute not listed here is removed, which is stricter than the profile's table):

- the pixels and the tags that say how to show them (Image Pixel module, Modality LUT:
  rescale or LUT, VOI LUT: window or LUT, Presentation LUT Shape, pixel spacing);
- the few clinical tags a bone-age reading can use, under the profile's *Retain Patient
  Characteristics Option*: sex and age (never the birth date), and the modality, body part,
  laterality and view that the image check reads (core.image_checks); each only when its
  value is a well-formed code or age (TEXT_VALUE_PATTERNS), so no free text is kept;
- new Study, Series and SOP Instance UIDs (the profile's "U": replaced), derived from a
  hash of the pixel data so the same image stored twice is the same file (uploads are
  stored by content hash), and nothing of the original UIDs survives;
- Patient Identity Removed = YES and the De-identification Method, as the profile asks.

So names, ids, birth date, addresses, institution, physicians and operators, accession
number, station and device serial numbers, every date and time, descriptions and comments,
private tags, free-text explanations inside the LUTs, and the file meta's implementation
and source AE titles are all dropped. An image whose header says it has burned-in
annotation is refused before this (core.dicom.refusal). PNG and JPEG carry no patient tags
the service reads and are stored as they are.
"""

from __future__ import annotations

import hashlib
import io
import re

from core.imageio import is_dicom

# Tags that describe the pixels and how to display them (PS3.3 Image Pixel, Modality LUT,
# VOI LUT and Presentation LUT modules); sequences are rebuilt from SEQUENCE_ITEM_TAGS.
PIXEL_TAGS = (
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames",
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "PixelPaddingValue", "PixelPaddingRangeLimit",
    "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence", "PresentationLUTShape",
    "PixelSpacing", "ImagerPixelSpacing", "PixelAspectRatio", "LossyImageCompression", "PixelData",
)
SEQUENCE_ITEM_TAGS = {
    "ModalityLUTSequence": ("LUTDescriptor", "ModalityLUTType", "LUTData"),
    "VOILUTSequence": ("LUTDescriptor", "LUTData"),
}
# The Retain Patient Characteristics Option (sex, age) and what core.image_checks reads.
CLINICAL_TAGS = ("PatientSex", "PatientAge", "BodyPartExamined", "Laterality", "ImageLaterality", "Modality",
                 "ViewPosition")
KEPT_TAGS = PIXEL_TAGS + CLINICAL_TAGS
REPLACED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
DEIDENTIFICATION_METHOD = ["DICOM PS3.15 Basic Profile, clean slate (boneage)",  # LO: 64 characters each
                           "Retain Patient Characteristics Option", "UIDs replaced"]
ADDED_TAGS = ("SOPClassUID", *REPLACED_UIDS, "PatientIdentityRemoved", "DeidentificationMethod")
# A kept text value must be what its VR allows, so free text (a name typed into the body
# part, say) cannot ride along: Code Strings and Age Strings; other VRs kept are numbers.
TEXT_VALUE_PATTERNS = {"CS": re.compile(r"[A-Z0-9 _]{0,16}"), "AS": re.compile(r"\d{3}[DWMY]")}


def deidentify(data: bytes) -> bytes:
    """The bytes to store for an upload: DICOM reduced to KEPT_TAGS (plus ADDED_TAGS),
    anything else unchanged. ImageDecodeError when the DICOM cannot be parsed or is
    refused (core.dicom.refusal)."""
    if not is_dicom(data):
        return data
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    from core.dicom import read_dataset, refusal
    from core.imageio import ImageDecodeError

    source = read_dataset(data)
    problem = refusal(source)  # the upload was decoded before; this guards any other caller
    if problem is None and "TransferSyntaxUID" not in source.file_meta:
        problem = "the DICOM file has no transfer syntax; the file is damaged. Export the image again"
    if problem is not None:
        raise ImageDecodeError(problem)
    reduced = Dataset()
    for keyword in KEPT_TAGS:
        if keyword in source and _well_formed(source[keyword]):
            reduced[keyword] = _kept(source[keyword])
    pixels = hashlib.sha256(bytes(source.get("PixelData", b"") or b"")).hexdigest()
    sop_class = source.file_meta.get("MediaStorageSOPClassUID") or source.get("SOPClassUID") \
        or SecondaryCaptureImageStorage
    reduced.SOPClassUID = sop_class
    for keyword in REPLACED_UIDS:  # the same pixels give the same UIDs: nothing of the originals
        setattr(reduced, keyword, generate_uid(entropy_srcs=[pixels, keyword]))
    reduced.PatientIdentityRemoved = "YES"
    reduced.DeidentificationMethod = DEIDENTIFICATION_METHOD
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = reduced.SOPInstanceUID
    meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
    reduced.file_meta = meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, reduced, enforce_file_format=True)
    return buffer.getvalue()


def _well_formed(element) -> bool:
    pattern = TEXT_VALUE_PATTERNS.get(element.VR)
    if pattern is None:
        return True
    values = element.value if element.VM > 1 else [element.value]
    return all(pattern.fullmatch(str(value if value is not None else "").strip()) for value in values)


def _kept(element):
    """The element as it is, or a sequence rebuilt with only its items' display tags."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    allowed = SEQUENCE_ITEM_TAGS.get(element.keyword)
    if allowed is None:
        return element
    items = []
    for item in element.value:
        clean = Dataset()
        for keyword in allowed:
            if keyword in item:
                clean[keyword] = item[keyword]
        items.append(clean)
    return DataElement(element.tag, "SQ", items)
