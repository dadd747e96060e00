"""Value representations: how each DICOM VR is typed in the warehouse.

The type of a dicom_metadata column follows the Cloud Healthcare API BigQuery export (the schema
behind IDC's ``dicom_all``), so that IDC's published SQL runs on our tables. This module is the
single source of that mapping; ``schemas/vr_types.json`` is generated from it.
"""

from __future__ import annotations

from pydicom.datadict import DicomDictionary, RepeatersDictionary, mask_match

__all__ = [
    "BIGQUERY_TYPE_BY_VR",
    "BINARY_VRS",
    "CHARSET_VRS",
    "EXPLICIT_LONG_LENGTH_VRS",
    "PN_COMPONENTS",
    "PN_GROUPS",
    "SINGLE_VALUE_TEXT_VRS",
    "STRUCT_PACK_FORMAT",
    "dictionary_column",
    "resolve_ambiguous_vr",
]

#: BigQuery (GoogleSQL) type of a column for each VR; PN is a STRUCT and SQ a RECORD.
BIGQUERY_TYPE_BY_VR: dict[str, str] = {
    **dict.fromkeys(
        ["AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT", "DS", "IS"], "STRING"
    ),
    "DA": "DATE",
    "TM": "TIME",
    "DT": "TIMESTAMP",
    "FL": "FLOAT64",
    "FD": "FLOAT64",
    **dict.fromkeys(["SS", "US", "SL", "UL", "AT", "SV", "UV"], "INT64"),
    "PN": "STRUCT",
    "SQ": "RECORD",
}

#: A PN value's component groups and components: the STRUCT fields of a PN column.
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")

#: VRs whose values are bytes: never a dicom_metadata column, only a dicom_elements row.
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

#: Text VRs decoded with the data set's Specific Character Set (PS3.5 6.1.2.3).
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})

#: VRs whose explicit VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
EXPLICIT_LONG_LENGTH_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)

#: Text VRs whose backslash is a character, not a value delimiter (always VM 1).
SINGLE_VALUE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})

#: struct format character and item size of each binary number VR.
STRUCT_PACK_FORMAT: dict[str, tuple[str, int]] = {
    "US": ("H", 2),
    "SS": ("h", 2),
    "UL": ("I", 4),
    "SL": ("i", 4),
    "FL": ("f", 4),
    "FD": ("d", 8),
    "SV": ("q", 8),
    "UV": ("Q", 8),
    "AT": ("H", 2),  # pairs of uint16: group, element
}

# Repeating groups (50xx curves, 60xx overlays) share one keyword across 128 groups. Only the
# first group of each becomes a column; the others would collide and go to OtherElements.
_REPEATER_COLUMN_GROUPS = frozenset({0x5000, 0x6000})


def resolve_ambiguous_vr(vr: str, pixel_representation: int | None) -> str:
    """Pick one VR for dictionary entries such as "US or SS" or "OB or OW".

    A binary alternative wins (the value is a blob, e.g. LUT Data "US or OW"); "US or SS"
    follows Pixel Representation (1 = signed), as PS3.5 defines.
    """
    if " or " not in vr:
        return vr
    options = vr.split(" or ")
    for binary in ("OW", "OB"):
        if binary in options:
            return binary
    if "SS" in options and pixel_representation == 1:
        return "SS"
    return options[0]


def _dictionary_entry(tag: int) -> tuple[str, str, str] | None:
    """(keyword, VR, VM) of a public tag that owns a column, else None."""
    if tag in DicomDictionary:
        vr, vm, _name, _retired, keyword = DicomDictionary[tag]
        return (keyword, vr, vm) if keyword else None
    group = tag >> 16
    if group not in _REPEATER_COLUMN_GROUPS:
        return None
    mask = mask_match(tag)
    if mask is None:
        return None
    vr, vm, _name, _retired, keyword = RepeatersDictionary[mask]
    return (keyword, vr, vm) if keyword else None


_COLUMN_CACHE: dict[int, tuple[str, str, bool] | None] = {}


def dictionary_column(tag: int) -> tuple[str, str, bool] | None:
    """(column name, dictionary VR, is_repeated) for a public tag, or None if it has no column.

    The column type comes from the data dictionary, never from the file, so that every file of
    a run (and of every run) agrees on it; a file whose value does not fit keeps it in
    dicom_elements and records an anomaly.
    """
    try:
        return _COLUMN_CACHE[tag]
    except KeyError:
        pass
    entry = None if tag >> 16 & 1 else _dictionary_entry(tag)
    column: tuple[str, str, bool] | None = None
    if entry is not None:
        keyword, vr, vm = entry
        vr = resolve_ambiguous_vr(vr, None)
        # only a VR with a warehouse type is a column: binary VRs are not, and neither are the
        # item and delimitation tags of group FFFE (VR "NONE") when a file holds one as an element
        if vr in BIGQUERY_TYPE_BY_VR:
            column = (keyword, vr, vm != "1")
    _COLUMN_CACHE[tag] = column
    return column
