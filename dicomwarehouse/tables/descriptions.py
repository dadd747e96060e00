"""Table and column descriptions that BigQuery shows in the console.

Keyword columns are described from pydicom's data dictionary (name and tag), so the
description of ``PatientName`` is "Patient's Name (0010,0010)" wherever it appears, at any
depth. The fixed columns (provenance, dicom_elements, ingest_errors and the helper tables) are
described here, once; a test fails when a column of ``schema.py`` has no description. The
views take their descriptions from the comments of ``sql/`` (``views.ViewDefinition``).
"""

from __future__ import annotations

import functools

from pydicom.datadict import DicomDictionary, RepeatersDictionary

from dicomwarehouse.tables.vr import PN_COMPONENTS, PN_GROUPS

__all__ = [
    "COLUMN_DESCRIPTIONS",
    "MANIFEST_COLUMN_DESCRIPTIONS",
    "TABLE_DESCRIPTIONS",
    "attribute_description",
]

_SOURCE = {
    "source_url": "URL of the object (file path, gs:// or s3:// URL).",
    "source_size": "Size of the object in bytes.",
    "source_generation": "Version of the object that was read: the object generation or "
    "version id in a bucket; a local file's modification time in nanoseconds.",
    "source_etag": "ETag of the object, where the store gives one.",
    "source_md5": "MD5 of the object (hex), where the store gives one.",
    "source_crc32c": "CRC32C of the object, where the store gives one.",
}

_RUN = {
    "ingest_run_id": "Ingest run that read the object (ids sort by start time).",
    "ingested_at": "When the ingest run that read the object started (UTC).",
}

_OTHER_ELEMENTS = {
    "OtherElements": "Private and unknown non-sequence elements of this level.",
    "OtherElements.Tag": "Tag of the element as Tag_GGGGEEEE.",
    "OtherElements.PrivateCreator": "Private creator of the element's block (private tags).",
    "OtherElements.Data": "Values of the element as strings, one per value.",
}

#: Descriptions of the fixed columns, per table; nested fields as ``parent.child``.
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "dicom_metadata": {
        **_SOURCE,
        "header_bytes_read": "Bytes read from the object to parse its header.",
        **_RUN,
        "ingest_anomalies": "Values of the object that did not fit their column or were not "
        "read; the raw values are in dicom_elements.",
        "ingest_anomalies.tag_path": "Where: tags from the top level down, with item indices.",
        "ingest_anomalies.keyword": "Keyword of the attribute, if it has one.",
        "ingest_anomalies.reason": "Why the value is not in its column.",
        **_OTHER_ELEMENTS,
    },
    "dicom_elements": {
        "source_url": _SOURCE["source_url"],
        "SOPInstanceUID": "SOP Instance UID (0008,0018) of the object.",
        "tag_path": "Ancestor tags with item indices, 8 upper-case hex digits per tag, such as "
        "00081115[0].0020000E.",
        "path": "The same path with keywords (private tags as Tag_GGGGEEEE), such as "
        "ReferencedSeriesSequence[0].SeriesInstanceUID.",
        "tag": "Tag of the element, 8 upper-case hex digits.",
        "keyword": "Keyword of the tag in the data dictionary; NULL for private tags.",
        "vr": "Value representation of the element as read.",
        "vm": "Number of values (items for a sequence).",
        "depth": "Sequence nesting level: 0 at the top level.",
        "private_creator": "Private creator of the element's block (private tags).",
        "value_strings": "Values as strings, one per value: as written for text VRs, decimal "
        "for binary numbers, 8 hex digits for AT; NULL for sequences and binary VRs.",
        "value_length": "Length of the value in bytes as encoded (NULL for undefined length).",
        "ingest_run_id": _RUN["ingest_run_id"],
    },
    "ingest_errors": {
        **_SOURCE,
        "stage": "Stage that failed: list, read, parse, flatten or write.",
        "error_type": "Kind of error (an exception class name).",
        "message": "What went wrong, without patient data.",
        "bytes_read": "Bytes read from the object before the error.",
        **_RUN,
    },
    "ingest_object_events": {
        **_SOURCE,
        "action": "Why the run looked at the object: new, changed, unchanged, retried, "
        "reingested or deleted.",
        "outcome": "What came of it: ingested, failed, skipped (unchanged, not read) or deleted "
        "(missing from a full listing).",
        "ingest_run_id": "Ingest run of the event.",
        "listed_at": "When that run started (UTC).",
    },
    "dicom_uid_names": {
        "uid": "The UID.",
        "name": "Its name in the DICOM standard, such as CT Image Storage.",
        "type": "What it names, such as SOP Class or Transfer Syntax.",
        "keyword": "Its keyword, such as CTImageStorage.",
        "retired": "True for UIDs the standard has retired.",
    },
    "ingest_runs": {
        "run_id": "Ingest run id (sorts by start time).",
        "started_at": "When the run started (UTC).",
        "objects": "Objects the run was given.",
        "instances": "Rows the run added to dicom_metadata.",
        "elements": "Rows the run added to dicom_elements.",
        "errors": "Rows the run added to ingest_errors.",
        "attributes_left_out": "Column paths the run left out of dicom_metadata to stay within "
        "BigQuery's column limit (their values are in dicom_elements).",
        "deep_sequences_left_out": "Sequences nested deeper than dicom_metadata allows (kept in "
        "dicom_elements only).",
        "summary_json": "The run's full summary record as committed (JSON).",
        "published_at": "When this publish wrote the run's rows to the history tables.",
    },
}

#: Descriptions of the manifest columns every run of dicom_metadata has (IDC's, see
#: ``required_columns.IDC_MANIFEST_COLUMNS``); other manifest columns are described by name.
MANIFEST_COLUMN_DESCRIPTIONS: dict[str, str] = {
    "collection_id": "IDC collection of the object, from the ingest manifest's collection_id "
    "column (NULL without one).",
    "crdc_study_uuid": "IDC's UUID of the version of the study holding the object, from the "
    "ingest manifest's crdc_study_uuid column (NULL without one: no URL names it).",
    "crdc_series_uuid": "IDC's UUID of the version of the series holding the object: the "
    "ingest manifest's crdc_series_uuid column, else the folder of an object named "
    "<series uuid>/<instance uuid>.dcm as in IDC's buckets; NULL otherwise.",
    "crdc_instance_uuid": "IDC's UUID of the version of the object: the ingest manifest's "
    "crdc_instance_uuid column, else the name of an object named <instance uuid>.dcm in a "
    "<series uuid> folder (or at a bucket's root) as in IDC's buckets; NULL otherwise.",
}

#: Descriptions of the tables and of the current-state views (``current_objects``, the rule they
#: apply, is described in its file, ``sql/internal/current_objects.sql``).
TABLE_DESCRIPTIONS: dict[str, str] = {
    "dicom_metadata_history": "Every committed ingest run's dicom_metadata rows: one row per "
    "DICOM object and run, one column per DICOM keyword (typed as in the Cloud Healthcare API "
    "BigQuery export behind IDC's dicom_all), and provenance columns. Query the dicom_metadata "
    "view for the current state.",
    "dicom_elements_history": "Every committed ingest run's dicom_elements rows: one row per "
    "element occurrence at every depth, private and unknown tags included (lossless). Query the "
    "dicom_elements view for the current state.",
    "ingest_errors_history": "Every committed ingest run's ingest_errors rows: objects that "
    "yielded no dicom_metadata row, and why. Query the ingest_errors view for the current state.",
    "ingest_object_events_history": "The ledger of every committed ingest run: one row per "
    "object the run was given (read, skipped as unchanged) or found deleted by a full listing.",
    "dicom_metadata": "One row per DICOM object: for each current source_url, the row of the "
    "latest ingest run that read it (dicom_metadata_history filtered by current_objects), so "
    "that re-ingesting a file never doubles a row.",
    "dicom_elements": "One row per element occurrence of the current objects (the rows of "
    "dicom_elements_history from each source_url's latest run).",
    "ingest_errors": "Objects whose latest ingest run yielded no dicom_metadata row, and why.",
    "dicom_uid_names": "DICOM UID dictionary (uid, name, type, keyword, retired) from pydicom.",
    "ingest_runs": "One row per ingest run of the warehouse that this dataset holds, as of the "
    "last publish.",
}


def _hex(tag: str) -> str:
    return f"({tag[:4]},{tag[4:]})"


@functools.cache
def _dictionary_names() -> dict[str, str]:
    """keyword -> "Name (GGGG,EEEE)" for every keyword pydicom knows, repeaters included."""
    names: dict[str, str] = {}
    for mask, (_vr, _vm, name, _retired, keyword) in RepeatersDictionary.items():
        if keyword:
            names[keyword] = f"{name} {_hex(mask.upper().replace('X', 'x'))}"
    for tag, (_vr, _vm, name, _retired, keyword) in DicomDictionary.items():
        if keyword:
            names[keyword] = f"{name} {_hex(f'{tag:08X}')}"
    return names


def attribute_description(name: str, parent: str | None = None) -> str | None:
    """Description of a keyword column (at any depth), of a private sequence column, or of
    the fields inside PN and OtherElements; ``parent`` is the enclosing field's name."""
    if parent in PN_GROUPS and name in PN_COMPONENTS:
        return f"{name} component of the {parent.lower()} representation."
    if name in PN_GROUPS:
        return f"{name} representation of the person name."
    if name.startswith("OtherElements") or parent == "OtherElements":
        key = f"OtherElements.{name}" if parent == "OtherElements" else name
        return _OTHER_ELEMENTS.get(key)
    if name.startswith("Tag_") and len(name) == 12:
        return f"Private or unknown sequence {_hex(name[4:])}."
    return _dictionary_names().get(name)
