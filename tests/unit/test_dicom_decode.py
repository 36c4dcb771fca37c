"""DICOM as radiology sends it (core.dicom): modality LUT (rescale), VOI LUT and window,
MONOCHROME1, 8/12/16-bit stored values; refusals with a reason; the header's tags for
the form."""

from __future__ import annotations

import warnings
from datetime import date

import numpy as np
import pytest
from pydicom.dataset import Dataset

from core.dicom import DicomTags, dicom_tags, tags_for_form
from core.imageio import ImageDecodeError, decode_image
from helpers import make_dicom

# A 12-bit ramp: 64 columns from 0 to 4032 in steps of 64, 48 rows.
RAMP = np.tile(np.arange(0, 4096, 64), (48, 1))


def test_monochrome2_without_a_voi_spans_its_own_range():
    image = decode_image(make_dicom(RAMP))
    assert image.dtype == np.float32 and image.shape == RAMP.shape
    np.testing.assert_allclose(image, RAMP / RAMP.max(), atol=1e-6)


def test_monochrome1_is_inverted_so_bone_is_bright():
    normal = decode_image(make_dicom(RAMP, photometric="MONOCHROME2"))
    inverted = decode_image(make_dicom(RAMP, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1.0 - normal, atol=1e-6)
    # with a window too: the window's low end is shown white
    windowed = decode_image(make_dicom(RAMP, photometric="MONOCHROME1", WindowCenter=2048, WindowWidth=1024))
    assert windowed[0, 0] == 1.0 and windowed[0, -1] == 0.0


def test_window_centre_and_width_are_applied():
    image = decode_image(make_dicom(RAMP, WindowCenter=2048, WindowWidth=1024))
    values = RAMP[0]
    below, above = values <= 1536, values > 2559
    assert (image[0, below] == 0).all() and (image[0, above] == 1).all()
    inside = ~below & ~above
    # PS3.3 C.11.2.1.2.1 (LINEAR): ((x - (c - 0.5)) / (w - 1) + 0.5)
    expected = (values[inside] - 2047.5) / 1023 + 0.5
    np.testing.assert_allclose(image[0, inside], expected, atol=1e-5)


def test_rescale_slope_and_intercept_are_applied_before_the_window():
    # Stored x shows as 2x - 1000: a window around 3096 in those units is the one around 2048 stored.
    rescaled = decode_image(make_dicom(RAMP, RescaleSlope=2, RescaleIntercept=-1000,
                                       WindowCenter=3096.5, WindowWidth=2047))
    plain = decode_image(make_dicom(RAMP, WindowCenter=2048, WindowWidth=1024))
    np.testing.assert_allclose(rescaled, plain, atol=2e-3)
    # the same window without the rescale shows something else
    unscaled = decode_image(make_dicom(RAMP, WindowCenter=3096.5, WindowWidth=2047))
    assert np.abs(unscaled - plain).max() > 0.3


def test_signed_values_with_an_intercept_like_a_ct_number():
    pixels = RAMP - 2048  # signed 12-bit
    image = decode_image(make_dicom(pixels, signed=True, RescaleIntercept=-1024, RescaleSlope=1))
    np.testing.assert_allclose(image, (pixels - pixels.min()) / np.ptp(pixels), atol=1e-6)


@pytest.mark.parametrize("entry_bits, top", [(8, 255), (12, 4095), (16, 65535)])
def test_a_voi_lut_sequence_is_applied_and_preferred_to_the_window(entry_bits, top):
    lut = Dataset()
    lut.LUTDescriptor = [1024, 1024, entry_bits]  # maps stored 1024..2047; below: first entry, above: last
    lut.add_new("LUTData", "US", [int(v) for v in np.round(np.linspace(0, top, 1024))])
    image = decode_image(make_dicom(RAMP, VOILUTSequence=[lut], WindowCenter=100, WindowWidth=10))
    values = RAMP[0]
    assert (image[0, values < 1024] == 0).all() and (image[0, values > 2047] == 1).all()
    inside = (values >= 1024) & (values <= 2047)
    expected = np.round(np.linspace(0, top, 1024))[values[inside] - 1024] / top
    np.testing.assert_allclose(image[0, inside], expected, atol=1e-6)


@pytest.mark.parametrize("bits_stored", [8, 12, 16])
def test_8_12_and_16_bit_stored_values(bits_stored):
    top = 2**bits_stored - 1
    pixels = np.tile(np.linspace(0, top, 64).round().astype(np.int64), (40, 1))
    image = decode_image(make_dicom(pixels, bits_stored=bits_stored))
    np.testing.assert_allclose(image, pixels / top, atol=1e-6)
    windowed = decode_image(make_dicom(pixels, bits_stored=bits_stored, WindowCenter=top / 2, WindowWidth=top / 2))
    assert windowed.min() == 0 and windowed.max() == 1 and 0 < windowed.mean() < 1


def test_multi_frame_is_refused():
    with pytest.raises(ImageDecodeError, match="3 frames.*single hand radiograph"):
        decode_image(make_dicom(RAMP, frames=3))


def test_an_object_without_pixels_is_refused_with_what_it_is():
    structured_report = make_dicom(RAMP, modality="SR")
    import io

    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(structured_report))
    del dataset.PixelData
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ImageDecodeError, match="holds no image.*Basic Text SR.*CR or DX"):
        decode_image(buffer.getvalue())


@pytest.mark.parametrize("name, reason", [
    ("rtplan.dcm", "holds no image.*RT Plan"),
    ("reportsi.dcm", "holds no image.*Basic Text SR"),
    ("waveform_ecg.dcm", "holds no image.*ECG"),
    ("DICOMDIR", "holds no image.*Media Storage Directory"),
    ("rtdose.dcm", "15 frames"),
    ("SC_rgb_small_odd.dcm", "colour \\(RGB\\)"),
    ("examples_palette.dcm", "colour \\(PALETTE COLOR\\)"),
])
def test_pydicoms_non_radiographs_are_refused_with_a_reason(name, reason):
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom's test file {name} is not installed")
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(open(path, "rb").read())


def test_an_image_for_processing_is_refused():
    with pytest.raises(ImageDecodeError, match="for processing.*for presentation"):
        decode_image(make_dicom(RAMP, PresentationIntentType="FOR PROCESSING"))
    for_processing = make_dicom(RAMP, SOPClassUID="1.2.840.10008.5.1.4.1.1.1.1.1")
    with pytest.raises(ImageDecodeError, match="for processing"):
        decode_image(for_processing)
    assert decode_image(make_dicom(RAMP, PresentationIntentType="FOR PRESENTATION")).shape == RAMP.shape


def test_colour_secondary_capture_and_burned_in_annotation_are_refused():
    with pytest.raises(ImageDecodeError, match="colour.*grayscale"):
        decode_image(make_dicom(RAMP, photometric="PALETTE COLOR"))
    with pytest.raises(ImageDecodeError, match="burned-in annotation"):
        decode_image(make_dicom(RAMP, BurnedInAnnotation="YES"))


def test_a_compressed_image_that_cannot_be_decoded_is_refused_naming_the_compression():
    import io

    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    dataset = pydicom.dcmread(io.BytesIO(make_dicom(RAMP)))
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1  # as PACS often send CR/DX
    dataset.PixelData = encapsulate([b"\xff\xd8 not really a JPEG stream \xff\xd9"])
    dataset["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ImageDecodeError, match="compressed as JPEG Lossless.*cannot be decoded.*uncompressed"):
        decode_image(buffer.getvalue())


# ---------------------------------------------------------------- compressed transfer syntaxes (python-gdcm)

# A 12-bit film-like image: a diagonal ramp with a window, so the VOI path runs too.
FILM = np.add.outer(np.arange(48) * 40, np.arange(64) * 20) % 4096
PACS_COMPRESSIONS = {
    "JPEG Lossless SV1": "1.2.840.10008.1.2.4.70",
    "JPEG Lossless": "1.2.840.10008.1.2.4.57",
    "JPEG-LS Lossless": "1.2.840.10008.1.2.4.80",
    "JPEG 2000 Lossless": "1.2.840.10008.1.2.4.90",
}


def _transcoded(data: bytes, transfer_syntax: str, tmp_path) -> bytes:
    """The DICOM file re-encoded by GDCM in another transfer syntax, as a PACS exports it."""
    import gdcm

    source, target = tmp_path / "source.dcm", tmp_path / "target.dcm"
    source.write_bytes(data)
    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(transfer_syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return target.read_bytes()


@pytest.mark.parametrize("transfer_syntax", PACS_COMPRESSIONS.values(), ids=PACS_COMPRESSIONS.keys())
def test_pacs_compressions_decode_to_the_uncompressed_pixels(transfer_syntax, tmp_path):
    import io

    import pydicom

    uncompressed = make_dicom(FILM, WindowCenter=1500, WindowWidth=2000)
    compressed = _transcoded(uncompressed, transfer_syntax, tmp_path)
    dataset = pydicom.dcmread(io.BytesIO(compressed))
    assert dataset.file_meta.TransferSyntaxUID == transfer_syntax and dataset.file_meta.TransferSyntaxUID.is_compressed
    assert len(dataset.PixelData) < FILM.size * 2  # encapsulated, compressed
    np.testing.assert_array_equal(decode_image(compressed), decode_image(uncompressed))


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"])
def test_pydicoms_compressed_files_equal_their_uncompressed_reference(name):
    """pydicom's own test data: JPEG-LS and JPEG 2000 lossless (and RLE) encodings of MR_small.dcm."""
    from pydicom.data import get_testdata_file

    reference = decode_image(open(get_testdata_file("MR_small.dcm"), "rb").read())
    np.testing.assert_array_equal(decode_image(open(get_testdata_file(name), "rb").read()), reference)


def test_a_12_bit_jpeg_that_nothing_installed_decodes_is_refused_with_the_reason():
    """JPEG Extended with 12-bit samples (pydicom's JPGExtended.dcm): GDCM's and Pillow's
    plugins both decline it (pylibjpeg-libjpeg would read it but is GPL)."""
    from pydicom.data import get_testdata_file

    with pytest.raises(ImageDecodeError, match=r"compressed as JPEG Extended \(Process 2 and 4\) and cannot be "
                                               r"decoded here \(.*12-bit precision.*\); export it uncompressed"):
        decode_image(open(get_testdata_file("JPGExtended.dcm"), "rb").read())


def test_a_syntax_without_an_installed_decoder_is_refused_naming_the_compression(monkeypatch):
    """As before python-gdcm: JPEG-LS with no decoder plugin available (made so for this test only)."""
    from pydicom.data import get_testdata_file
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})
    with pytest.raises(ImageDecodeError, match=r"compressed as JPEG-LS Lossless Image Compression and cannot be "
                                               r"decoded here \(no decoder for it is installed\); export it "
                                               r"uncompressed \(Explicit VR Little Endian\)"):
        decode_image(open(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), "rb").read())


def test_every_pydicom_test_file_decodes_or_is_refused_with_a_reason():
    from pydicom.data import get_testdata_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = get_testdata_files()
    assert len(paths) > 50
    decoded = refused = 0
    for path in paths:
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = decode_image(data)
        except ImageDecodeError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            refused += 1
            continue
        assert image.dtype == np.float32 and image.ndim == 2, path
        assert 0.0 <= image.min() <= image.max() <= 1.0, path
        decoded += 1
    assert decoded >= 5 and refused >= 50


# ---------------------------------------------------------------- tags for the form


def test_the_tags_for_the_form_are_read():
    tags = dicom_tags(make_dicom(RAMP, photometric="MONOCHROME1", modality="CR", PatientSex="F",
                                 PatientBirthDate="20140327", StudyDate="20241103", PatientName="Doe^Jane"))
    assert tags == DicomTags(sex="F", birth_date=date(2014, 3, 27), study_date=date(2024, 11, 3),
                             chronological_age_months=round((date(2024, 11, 3) - date(2014, 3, 27)).days
                                                            / (365.25 / 12), 2),
                             modality="CR", photometric_interpretation="MONOCHROME1")
    assert 127 < tags.chronological_age_months < 128
    assert "Doe" not in str(tags.as_dict())


@pytest.mark.parametrize("keyword", ["AcquisitionDate", "SeriesDate", "ContentDate"])
def test_the_study_date_falls_back_to_the_acquisition_series_or_content_date(keyword):
    tags = dicom_tags(make_dicom(RAMP, PatientBirthDate="20100101", **{keyword: "20200101"}))
    assert tags.study_date == date(2020, 1, 1) and 119 < tags.chronological_age_months < 121


def test_missing_or_malformed_tags_are_nulls_not_errors():
    empty = dicom_tags(make_dicom(RAMP))
    assert (empty.sex, empty.birth_date, empty.study_date, empty.chronological_age_months) == (None,) * 4
    odd = dicom_tags(make_dicom(RAMP, PatientSex="O", PatientBirthDate="2014", StudyDate="20241399"))
    assert (odd.sex, odd.birth_date, odd.study_date, odd.chronological_age_months) == (None,) * 4
    backwards = dicom_tags(make_dicom(RAMP, PatientBirthDate="20200101", StudyDate="20100101"))
    assert backwards.birth_date and backwards.study_date and backwards.chronological_age_months is None


def test_the_patients_age_tag_gives_the_age_when_there_are_no_dates():
    assert dicom_tags(make_dicom(RAMP, PatientAge="010Y")).chronological_age_months == 120.0
    assert dicom_tags(make_dicom(RAMP, PatientAge="030M")).chronological_age_months == 30.0
    assert dicom_tags(make_dicom(RAMP, PatientAge="45Y")).chronological_age_months is None  # malformed


def test_tags_of_a_file_that_is_not_dicom_raise_a_decode_error():
    with pytest.raises(ImageDecodeError, match="cannot be read"):
        dicom_tags(b"this is a text file, not a radiograph\n" * 10)


def test_the_form_is_told_early_when_a_file_cannot_be_assessed():
    assert tags_for_form(make_dicom(RAMP, PatientSex="M")).sex == "M"
    with pytest.raises(ImageDecodeError, match="not a DICOM file.*enter them"):
        tags_for_form(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with pytest.raises(ImageDecodeError, match="2 frames"):
        tags_for_form(make_dicom(RAMP, frames=2, PatientSex="M"))
