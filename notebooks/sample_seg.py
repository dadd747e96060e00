"""A small DICOM Segmentation over one of pydicom's sample CT series, for the notebooks.

pydicom's sample files hold a SEG, but not the CT series it segments, so a cohort of "CT series
that a SEG segments" would be empty on them. The notebooks therefore make one with highdicom: a
binary segment (a cube of voxels) over the five-slice CT series ``dicomdirtests/98892001/CT5N``.
Its UIDs are derived from fixed text, so the notebooks' outputs are the same on every run.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

#: The sample CT series the segmentation is drawn over (five 16 x 16 slices, 2.5 mm apart).
SOURCE_SERIES_FOLDER = Path("dicomdirtests") / "98892001" / "CT5N"


def write_sample_seg(samples: Path, folder: Path) -> Path:
    """Write ``folder/seg.dcm``, a SEG of one segment over the sample CT series; return it."""
    images = [pydicom.dcmread(path) for path in (samples / SOURCE_SERIES_FOLDER).iterdir()]
    images.sort(key=lambda image: float(image.ImagePositionPatient[2]))
    mask = np.zeros((len(images), images[0].Rows, images[0].Columns), dtype=bool)
    mask[1:4, 4:12, 4:12] = True  # a cube in the three middle slices
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=generate_uid(entropy_srcs=["dicomwarehouse notebook seg series"]),
        series_number=100,
        sop_instance_uid=generate_uid(entropy_srcs=["dicomwarehouse notebook seg instance"]),
        instance_number=1,
        manufacturer="dicomwarehouse",
        manufacturer_model_name="notebook",
        software_versions="0.1",
        device_serial_number="1",
        series_description="Notebook lesion segmentation",
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "seg.dcm"
    seg.save_as(path)
    return path
