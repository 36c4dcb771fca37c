"""DICOM uploads are reduced to pixel data and a few clinical tags before storage."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from core.deidentify import KEPT_TAGS, deidentify
from core.imageio import decode_image
from helpers import make_png

IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDsSequence", "InstitutionName",
               "ReferringPhysicianName", "AccessionNumber", "StudyDate", "StationName", "SOPInstanceUID")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"])
def test_identifying_tags_are_dropped_and_the_pixels_kept(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    original = open(path, "rb").read()
    source = pydicom.dcmread(io.BytesIO(original))
    reduced_bytes = deidentify(original)
    reduced = pydicom.dcmread(io.BytesIO(reduced_bytes))

    assert {element.keyword for element in reduced} <= set(KEPT_TAGS) | {"SOPClassUID", "SOPInstanceUID"}
    for keyword in IDENTIFYING:
        if keyword == "SOPInstanceUID":
            assert reduced.SOPInstanceUID != source.SOPInstanceUID
        else:
            assert keyword not in reduced
    if "PatientName" in source and str(source.PatientName):
        assert str(source.PatientName).encode() not in reduced_bytes
    assert not any(element.tag.is_private for element in reduced)
    assert reduced.get("PatientSex") == source.get("PatientSex")
    np.testing.assert_array_equal(decode_image(reduced_bytes), decode_image(original))


def test_other_formats_are_stored_unchanged():
    png = make_png()
    assert deidentify(png) is png
