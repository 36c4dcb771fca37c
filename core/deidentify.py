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
annotation is refused before this (core.dicom.refusal).

PNG and JPEG files carry metadata that exports fill with the patient's name, id or the
study date: PNG text chunks (tEXt, zTXt, iTXt), eXIf and tIME; JPEG APPn segments (EXIF with
its thumbnail, XMP, IPTC/Photoshop, ICC profile descriptions, MPF preview images) and COM
comments; and bytes after the image's end. strip_raster_metadata removes them at byte level,
without decoding or re-encoding, so the pixels are exactly the same: a PNG keeps its
critical chunks (IHDR, PLTE, IDAT, IEND) and the few ancillary chunks that change how the
pixels are decoded or shown (PNG_KEPT_ANCILLARY); a JPEG keeps every segment the decoder
needs, APP0 JFIF (its thumbnail removed) and APP14 Adobe (which sets the colour transform).
"""

from __future__ import annotations

import hashlib
import io
import re

from core.imageio import ImageDecodeError, is_dicom

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

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary PNG chunks kept: transparency, gamma and colour space, significant bits, pixel
# size; numbers only. Every other ancillary chunk (tEXt, zTXt, iTXt, eXIf, tIME, iCCP with its
# profile name, sPLT, private chunks...) is dropped; critical chunks are always kept.
PNG_KEPT_ANCILLARY = frozenset({b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs"})
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_SOI, JPEG_EOI, JPEG_SOS = b"\xff\xd8", b"\xff\xd9", 0xDA
JPEG_APP0, JPEG_APP14, JPEG_COM = 0xE0, 0xEE, 0xFE
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length
# The end of a scan's entropy-coded data: a marker, i.e. 0xFF (after any fill 0xFFs) followed
# by a byte that is not 0x00 (a stuffed 0xFF) nor RST0-7 (restart markers inside the scan).
JPEG_MARKER_AFTER_SCAN = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def deidentify(data: bytes) -> bytes:
    """The bytes to store for an upload: DICOM reduced to KEPT_TAGS (plus ADDED_TAGS), PNG
    and JPEG without their metadata (strip_raster_metadata), anything else unchanged.
    ImageDecodeError when the DICOM cannot be parsed or is refused (core.dicom.refusal), or
    a PNG's or JPEG's structure cannot be followed."""
    if not is_dicom(data):
        return strip_raster_metadata(data)
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


def strip_raster_metadata(data: bytes) -> bytes:
    """A PNG or JPEG without the metadata that can name a patient (see the module's
    docstring); the image data is copied byte for byte, so it decodes to the same pixels.
    Other bytes are returned as they are. ImageDecodeError when the file's chunks or
    segments cannot be followed (it is damaged)."""
    if data.startswith(PNG_SIGNATURE):
        return _strip_png(data)
    if data.startswith(JPEG_SOI):
        return _strip_jpeg(data)
    return data


def _strip_png(data: bytes) -> bytes:
    kept, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position < len(data):
        if position + 12 > len(data):
            raise ImageDecodeError("the PNG file is damaged: it ends inside a chunk header")
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        end = position + 12 + length
        if not kind.isalpha():
            raise ImageDecodeError("the PNG file is damaged: a chunk's type is not four letters")
        if end > len(data):
            raise ImageDecodeError("the PNG file is damaged: a chunk runs past the end of the file")
        if not kind[0] & 0x20 or kind in PNG_KEPT_ANCILLARY:  # critical (upper-case first letter) or kept
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            return b"".join(kept)  # anything after the image's end is dropped
    return b"".join(kept) + PNG_IEND  # a file that stops without IEND ends with one


def _strip_jpeg(data: bytes) -> bytes:
    kept, position = [JPEG_SOI], len(JPEG_SOI)
    while position < len(data):
        if data[position] != 0xFF:  # bytes between segments: decoders skip them, so do we
            position = data.find(b"\xff", position)
            if position < 0:
                break
            continue
        while position + 1 < len(data) and data[position + 1] == 0xFF:  # fill bytes
            position += 1
        if position + 1 >= len(data):
            break
        marker = data[position + 1]
        if marker == JPEG_EOI[1]:
            return b"".join(kept) + JPEG_EOI  # anything after the image's end is dropped
        if marker in JPEG_STANDALONE:
            kept.append(data[position:position + 2])
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > len(data):
            raise ImageDecodeError("the JPEG file is damaged: a segment runs past the end of the file")
        segment = _kept_jpeg_segment(marker, data[position:end])
        if segment:
            kept.append(segment)
        position = end
        if marker == JPEG_SOS:  # the scan's entropy-coded data follows, up to the next marker
            found = JPEG_MARKER_AFTER_SCAN.search(data, position)
            scan_end = found.end() - 2 if found else len(data)
            kept.append(data[position:scan_end])
            position = scan_end
    return b"".join(kept) + JPEG_EOI  # a file that stops without EOI ends with one


def _kept_jpeg_segment(marker: int, segment: bytes) -> bytes | None:
    """The segment to keep (None: dropped). APP0 is kept only as JFIF and without its
    thumbnail, APP14 only as Adobe's colour-transform segment; other APPn and COM go."""
    payload = segment[4:]
    if marker == JPEG_APP0:
        if not payload.startswith(b"JFIF\x00") or len(payload) < 14:
            return None
        return b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00"  # 0x0 thumbnail
    if marker == JPEG_APP14:
        return segment if payload.startswith(b"Adobe") else None
    if 0xE0 <= marker <= 0xEF or marker == JPEG_COM:
        return None
    return segment
