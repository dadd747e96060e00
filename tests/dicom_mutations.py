"""Structure-aware mutations of real DICOM files, for the fuzz tests and ``benchmarks/fuzz.py``.

A mutation is a *recipe*: the name of a mutation, the seed of its random choices and the
files it starts from. The same recipe always makes the same bytes, so a crasher found by a
long fuzz run is kept as a recipe in a test (a line of text), never as an opaque binary.

Mutations know where elements are (``element_spans``: a raw walk of the file meta group and of
the data set, sequences and items included, in little endian explicit or implicit VR), so they
can cut inside an element header, rewrite a length field or a VR, or insert an element at an
element boundary. Files in other encodings get the byte-level mutations only.

Canaries: ``plant_canaries`` writes known values into PatientName, PatientID and
InstitutionName before mutating, so a test can assert that no error text, log or output
carries a value.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import dcmread, dcmwrite

__all__ = [
    "CANARIES",
    "MUTATIONS",
    "ElementSpan",
    "Recipe",
    "element_spans",
    "make_recipe",
    "mutate",
    "plant_canaries",
]

#: Values planted in the files before mutation; none may reach an error message or output.
CANARIES = {
    "PatientName": "Canarypn^Zqxwvu",
    "PatientID": "CANARYID7QX",
    "InstitutionName": "CANARYINST9ZW",
}

_EXPLICIT_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN",
                                b"UR", b"UT"})  # fmt: skip
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_IMPLICIT_LE = b"1.2.840.10008.1.2\x00"


@dataclass(frozen=True)
class ElementSpan:
    """One element header found by the raw walk: where it starts, how long its header is,
    and where its 4- or 2-byte length field is."""

    offset: int
    header_length: int
    tag: int
    explicit: bool
    length_offset: int
    length_size: int


def element_spans(data: bytes, limit: int = 20000) -> list[ElementSpan]:
    """Element headers of a little endian file, in file order (at most ``limit``).

    A tolerant walk: it stops at Pixel Data, at the end, or at the first header it cannot
    make sense of. Big endian and deflated files yield the file meta group only.
    """
    spans: list[ElementSpan] = []
    position = 132 if data[128:132] == b"DICM" else 0
    explicit = True
    if position:
        position = _walk(data, position, True, spans, limit, meta_only=True)
        meta = data[132:position]
        if b"1.2.840.10008.1.2.2" in meta or b"1.2.840.10008.1.2.1.99" in meta:
            return spans
        explicit = _IMPLICIT_LE not in meta
    else:
        explicit = len(data) > 6 and b"AA" <= data[4:6] <= b"ZZ"
    _walk(data, position, explicit, spans, limit, meta_only=False)
    return spans


def _walk(
    data: bytes, position: int, explicit: bool, spans: list[ElementSpan], limit: int,
    meta_only: bool,
) -> int:  # fmt: skip
    end = len(data)
    while position + 8 <= end and len(spans) < limit:
        group, element = struct.unpack_from("<HH", data, position)
        tag = group << 16 | element
        if meta_only and group != 0x0002:
            return position
        if tag == 0x7FE00010:
            return position
        if group == 0xFFFE:  # item and delimiters: tag and 4-byte length, in either syntax
            (length,) = struct.unpack_from("<I", data, position + 4)
            spans.append(ElementSpan(position, 8, tag, False, position + 4, 4))
            position += 8
            if tag == _ITEM and length != _UNDEFINED:
                continue  # walk into the item's elements
            continue
        vr = data[position + 4 : position + 6]
        if explicit and not (b"AA" <= vr <= b"ZZ"):
            return position
        if explicit and vr in _EXPLICIT_LONG_VRS:
            if position + 12 > end:
                return position
            (length,) = struct.unpack_from("<I", data, position + 8)
            span = ElementSpan(position, 12, tag, True, position + 8, 4)
        elif explicit:
            (length,) = struct.unpack_from("<H", data, position + 6)
            span = ElementSpan(position, 8, tag, True, position + 6, 2)
        else:
            (length,) = struct.unpack_from("<I", data, position + 4)
            span = ElementSpan(position, 8, tag, False, position + 4, 4)
        spans.append(span)
        position += span.header_length
        if length == _UNDEFINED or (explicit and vr == b"SQ"):
            continue  # walk into the sequence (items follow)
        position += length
    return position


def plant_canaries(data: bytes) -> bytes | None:
    """The file rewritten with the canary values set; None when pydicom cannot rewrite it."""
    try:
        dataset = dcmread(io.BytesIO(data), force=True)
        for keyword, value in CANARIES.items():
            setattr(dataset, keyword, value)
        buffer = io.BytesIO()
        dcmwrite(buffer, dataset)
        return buffer.getvalue()
    except Exception:  # any file pydicom cannot rewrite is used as it is
        return None


# --- mutations ------------------------------------------------------------------------------
# Each takes (data, spans, rng, donor) and returns the mutated bytes.

Mutation = Callable[[bytes, list[ElementSpan], random.Random, bytes], bytes]


def _header_end(data: bytes, spans: list[ElementSpan]) -> int:
    return min(len(data), spans[-1].offset + 64) if spans else min(len(data), 4096)


def _pick(spans: list[ElementSpan], rng: random.Random) -> ElementSpan | None:
    return rng.choice(spans) if spans else None


def _boundary(data: bytes, spans: list[ElementSpan], rng: random.Random) -> int:
    span = _pick(spans, rng)
    return span.offset if span is not None else rng.randrange(len(data) + 1)


def truncate_anywhere(data, spans, rng, donor):
    return data[: rng.randrange(_header_end(data, spans) + 1)]


def truncate_in_element_header(data, spans, rng, donor):
    span = _pick(spans, rng)
    if span is None:
        return truncate_anywhere(data, spans, rng, donor)
    return data[: span.offset + rng.randrange(1, span.header_length)]


def flip_bytes(data, spans, rng, donor):
    out = bytearray(data)
    window = min(len(out), 4 * 8192)
    for _ in range(rng.randint(1, 16)):
        if window:
            out[rng.randrange(window)] ^= 1 << rng.randrange(8)
    return bytes(out)


def _set_length(data: bytes, span: ElementSpan, value: int) -> bytes:
    fmt = "<I" if span.length_size == 4 else "<H"
    value &= 0xFFFFFFFF if span.length_size == 4 else 0xFFFF
    out = bytearray(data)
    struct.pack_into(fmt, out, span.length_offset, value)
    return bytes(out)


def length_undefined(data, spans, rng, donor):
    span = _pick(spans, rng)
    return data if span is None else _set_length(data, span, _UNDEFINED)


def length_huge(data, spans, rng, donor):
    span = _pick(spans, rng)
    value = rng.choice([0x7FFFFFFF, 0xFFFFFFFE, 0x10000000, len(data) * 2, 0xFFFF])
    return data if span is None else _set_length(data, span, value)


def length_odd(data, spans, rng, donor):
    span = _pick(spans, rng)
    if span is None:
        return data
    (length,) = struct.unpack_from("<I" if span.length_size == 4 else "<H", data,
                                   span.length_offset)  # fmt: skip
    return _set_length(data, span, length + rng.choice([1, -1, 3]))


def invalid_vr(data, spans, rng, donor):
    explicit = [s for s in spans if s.explicit]
    if not explicit:
        return flip_bytes(data, spans, rng, donor)
    span = rng.choice(explicit)
    vr = rng.choice([b"\x00\x01", b"zz", b"QQ", b"  ", b"\xff\xff", b"NO", b"OX"])
    return data[: span.offset + 4] + vr + data[span.offset + 6 :]


def _explicit_at(spans: list[ElementSpan], offset: int) -> bool:
    return any(s.explicit for s in spans if s.offset >= offset) or all(s.explicit for s in spans)


def _sequence_header(tag: int, explicit: bool, length: int = _UNDEFINED) -> bytes:
    packed = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if explicit:
        return packed + b"SQ\x00\x00" + struct.pack("<I", length)
    return packed + struct.pack("<I", length)


def _item(length: int = _UNDEFINED) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, length)


def undefined_sequence_without_delimiter(data, spans, rng, donor):
    at = _boundary(data, spans, rng)
    explicit = _explicit_at(spans, at)
    opening = _sequence_header(0x0040A730, explicit) + _item()
    tail = data[at:] if rng.random() < 0.5 else b""
    return data[:at] + opening + tail


def deep_nesting(data, spans, rng, donor):
    at = _boundary(data, spans, rng)
    explicit = _explicit_at(spans, at)
    depth = rng.choice([1000, 10000])
    level = _sequence_header(0x0040A730, explicit) + _item()
    closing = b"" if rng.random() < 0.5 else (
        struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    ) * depth  # fmt: skip
    return data[:at] + level * depth + closing + data[at:]


def stray_delimiter(data, spans, rng, donor):
    at = _boundary(data, spans, rng)
    tag = rng.choice([_ITEM, _ITEM_END, _SEQUENCE_END])
    length = rng.choice([0, 0, 4, _UNDEFINED])
    stray = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)
    return data[:at] + stray + (b"\x00" * 4 if length == 4 else b"") + data[at:]


_GARBAGE_CHARSETS = [b"ISO_IR 999", b"ISO 2022 IR 87\\\x1b$B", b"\xff\xfe\x00", b"GB18030\\UTF8",
                     b"\\\\\\\\", b"ISO_IR 192\x00\x00"]  # fmt: skip


def garbage_character_set(data, spans, rng, donor):
    value = rng.choice(_GARBAGE_CHARSETS)
    if len(value) % 2:
        value += b" "
    charset = next((s for s in spans if s.tag == 0x00080005), None)
    if charset is not None:
        (length,) = struct.unpack_from("<I" if charset.length_size == 4 else "<H", data,
                                       charset.length_offset)  # fmt: skip
        start = charset.offset + charset.header_length
        element = data[charset.offset : charset.length_offset]
        packed = struct.pack("<I" if charset.length_size == 4 else "<H", len(value))
        return data[: charset.offset] + element + packed + value + data[start + length :]
    first = next((s for s in spans if s.tag >> 16 >= 0x0008), None)
    if first is None:
        return data
    element = struct.pack("<HH", 0x0008, 0x0005)
    element += b"CS" + struct.pack("<H", len(value)) if first.explicit else struct.pack(
        "<I", len(value)
    )  # fmt: skip
    return data[: first.offset] + element + value + data[first.offset :]


def splice(data, spans, rng, donor):
    donor_spans = element_spans(donor)
    cut = _boundary(data, spans, rng)
    graft = _boundary(donor, donor_spans, rng)
    return data[:cut] + donor[graft:]


def zero_tail(data, spans, rng, donor):
    at = _boundary(data, spans, rng)
    return data[:at] + b"\x00" * rng.choice([4096, 65536, 1 << 20])


def many_empty_items(data, spans, rng, donor):
    at = _boundary(data, spans, rng)
    explicit = _explicit_at(spans, at)
    return data[:at] + _sequence_header(0x0040A730, explicit) + _item(0) * 200_000 + data[at:]


MUTATIONS: dict[str, Mutation] = {
    function.__name__: function
    for function in (
        truncate_anywhere,
        truncate_in_element_header,
        flip_bytes,
        length_undefined,
        length_huge,
        length_odd,
        invalid_vr,
        undefined_sequence_without_delimiter,
        deep_nesting,
        stray_delimiter,
        garbage_character_set,
        splice,
        zero_tail,
        many_empty_items,
    )
}


@dataclass(frozen=True)
class Recipe:
    """How to make one mutated file again: mutation, seed, and the files it starts from."""

    mutation: str
    seed: int
    source: str
    donor: str

    def __str__(self) -> str:
        return f"{self.mutation}:{self.seed}:{self.source}:{self.donor}"


def make_recipe(
    rng: random.Random, sources: list[str], mutations: list[str] | None = None
) -> Recipe:
    """A random recipe over the given source names (and mutations, by default all)."""
    return Recipe(
        rng.choice(mutations or sorted(MUTATIONS)), rng.randrange(2**32), rng.choice(sources),
        rng.choice(sources),
    )  # fmt: skip


def mutate(recipe: Recipe, data: bytes, donor: bytes) -> bytes:
    """The bytes of ``recipe`` applied to ``data`` (and ``donor``, for splices)."""
    rng = random.Random(recipe.seed)
    spans = element_spans(data)
    return MUTATIONS[recipe.mutation](data, spans, rng, donor)


# --- fuzzing --------------------------------------------------------------------------------


def load_seed_files(
    folders: list[str], *, limit: int | None = None, max_bytes: int = 1 << 20
) -> dict[str, bytes]:
    """Seed files by name (path relative to its folder), canaries planted where pydicom can.

    Each file is cut to ``max_bytes`` after planting: what follows a header is Pixel Data,
    which a header read never reaches, and small seeds keep a fuzz run fast.
    """
    import os

    seeds: dict[str, bytes] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.endswith((".md", ".txt", ".json", ".py")) or os.path.islink(path):
                    continue
                with open(path, "rb") as handle:
                    data = handle.read()
                planted = plant_canaries(data)
                seeds[os.path.relpath(path, folder)] = (planted or data)[:max_bytes]
                if limit is not None and len(seeds) >= limit:
                    return seeds
    return seeds


@dataclass
class FuzzFinding:
    """One property a mutated input broke: the recipe to make it again, and what broke."""

    recipe: Recipe
    problem: str


@dataclass
class FuzzReport:
    """What a fuzz run over ``extract_object`` saw."""

    inputs: int = 0
    errors: int = 0
    slowest_seconds: float = 0.0
    slowest: Recipe | None = None
    findings: list[FuzzFinding] | None = None
    #: slowest object of each mutation, seconds
    slowest_by_mutation: dict[str, float] | None = None


def canary_in(text: object) -> str | None:
    """The first canary found in ``text`` (any case), if any."""
    folded = str(text).casefold()
    for value in CANARIES.values():
        for part in value.split("^"):
            if part.casefold() in folded:
                return part
    return None


def fuzz_extract(
    seeds: dict[str, bytes],
    folder: str,
    *,
    seed: int,
    count: int | None = None,
    seconds: float | None = None,
    max_seconds_per_object: float = 10.0,
    mutations: list[str] | None = None,
) -> FuzzReport:
    """Mutate seeds and extract each result; report every property an input broke.

    Properties: ``extract_object`` returns (never raises); the object takes at most
    ``max_seconds_per_object``; it gives exactly one of a metadata row and an error row; no
    canary is in the error row.
    """
    import os
    import time

    from dicomwarehouse.dicom.extract import extract_object, new_run
    from dicomwarehouse.io.refs import ObjectRef
    from dicomwarehouse.tables.schema import metadata_schema

    run = new_run()
    rng = random.Random(seed)
    names = sorted(seeds)
    report = FuzzReport(findings=[], slowest_by_mutation={})
    path = os.path.join(folder, "mutated.dcm")
    with open(path, "wb") as handle:  # warm up: the first object pays one-time imports
        handle.write(seeds[names[0]])
    extract_object(ObjectRef(path), run)
    started = time.monotonic()
    while (count is None or report.inputs < count) and (
        seconds is None or time.monotonic() - started < seconds
    ):
        recipe = make_recipe(rng, names, mutations)
        data = mutate(recipe, seeds[recipe.source], seeds[recipe.donor])
        with open(path, "wb") as handle:
            handle.write(data)
        report.inputs += 1
        began = time.perf_counter()
        try:
            extracted = extract_object(ObjectRef(path, len(data)), run)
        except Exception as exc:  # the property under test
            report.findings.append(FuzzFinding(recipe, f"raised {type(exc).__name__}"))
            continue
        elapsed = time.perf_counter() - began
        by_mutation = report.slowest_by_mutation
        by_mutation[recipe.mutation] = max(elapsed, by_mutation.get(recipe.mutation, 0.0))
        if elapsed > report.slowest_seconds:
            report.slowest_seconds, report.slowest = elapsed, recipe
        if elapsed > max_seconds_per_object:
            report.findings.append(FuzzFinding(recipe, f"took {elapsed:.1f} s"))
        if (extracted.metadata is None) == (extracted.error is None):
            report.findings.append(FuzzFinding(recipe, "not exactly one row"))
        try:  # the run-level step an object's column paths feed
            metadata_schema(extracted.column_paths)
        except Exception as exc:
            report.findings.append(FuzzFinding(recipe, f"schema failed: {type(exc).__name__}"))
        if extracted.error is not None:
            report.errors += 1
            leaked = canary_in(extracted.error)
            if leaked:
                report.findings.append(FuzzFinding(recipe, "canary in the error row"))
    return report


def parse_recipe(text: str) -> Recipe:
    """The recipe ``str(recipe)`` printed."""
    mutation, seed, rest = text.split(":", 2)
    source, donor = rest.rsplit(":", 1) if rest.count(":") else (rest, rest)
    return Recipe(mutation, int(seed), source, donor)


# --- a batch of mutated files, ingested end to end -----------------------------------------


def write_batch(
    folder: str, seeds: dict[str, bytes], *, count: int, seed: int, special: bool = True
) -> dict[str, str]:
    """Write ``count`` mutated files into ``folder`` (and, with ``special``, the files no
    reader may open or hang on); returns each file name with its recipe or kind.

    The special files: a FIFO, 64 MiB of zeros after a DICM preamble (sparse), an empty file,
    a symbolic link to itself, and real files with a stray item or delimitation tag.
    """
    import os

    rng = random.Random(seed)
    names = sorted(seeds)
    made: dict[str, str] = {}
    for index in range(count):
        recipe = make_recipe(rng, names)
        name = f"{index:05d}_{recipe.mutation}.dcm"
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(mutate(recipe, seeds[recipe.source], seeds[recipe.donor]))
        made[name] = str(recipe)
    if not special:
        return made
    os.mkfifo(os.path.join(folder, "fifo"))
    made["fifo"] = "FIFO"
    with open(os.path.join(folder, "zeros.dcm"), "wb") as handle:
        handle.write(b"\x00" * 128 + b"DICM")
        handle.truncate(64 * 1024 * 1024)
    made["zeros.dcm"] = "64 MiB of zeros after a DICM preamble"
    open(os.path.join(folder, "empty.dcm"), "wb").close()
    made["empty.dcm"] = "empty file"
    os.symlink(os.path.join(folder, "loop.dcm"), os.path.join(folder, "loop.dcm"))
    made["loop.dcm"] = "symbolic link loop"
    for index, name in enumerate(names[:: max(1, len(names) // 8)][:8]):
        recipe = Recipe("stray_delimiter", seed + index, name, name)
        stray_name = f"stray_{index}.dcm"
        with open(os.path.join(folder, stray_name), "wb") as handle:
            handle.write(mutate(recipe, seeds[name], seeds[name]))
        made[stray_name] = str(recipe)
    return made


def check_ingested(warehouse: str, folder: str, made: dict[str, str], output: str) -> list[str]:
    """What an ingest of ``write_batch``'s folder broke: each problem as one line.

    Every file must be in exactly one of dicom_metadata and ingest_errors (special files in
    ingest_errors), and no canary may be in an error row, the run record or ``output``.
    """
    import glob
    import json
    import os
    from collections import Counter

    import pyarrow.parquet as pq

    def urls(table: str, columns: list[str]) -> list[dict]:
        rows: list[dict] = []
        for shard in glob.glob(os.path.join(warehouse, table, "run-*", "*.parquet")):
            rows.extend(pq.read_table(shard, columns=columns).to_pylist())
        return rows

    metadata = Counter(row["source_url"] for row in urls("dicom_metadata", ["source_url"]))
    errors = urls("ingest_errors", ["source_url", "stage", "error_type", "message"])
    failed = Counter(row["source_url"] for row in errors)
    problems = []
    for name, what in sorted(made.items()):
        url = os.path.abspath(os.path.join(folder, name))
        seen = metadata[url] + failed[url]
        if seen != 1:
            problems.append(f"{name} ({what}): in {metadata[url]} metadata, {failed[url]} errors")
        elif what in ("FIFO", "symbolic link loop", "empty file") and not failed[url]:
            problems.append(f"{name} ({what}): not an error row")
    extra = (set(metadata) | set(failed)) - {
        os.path.abspath(os.path.join(folder, name)) for name in made
    }
    problems.extend(f"row for an object not in the batch: {url}" for url in sorted(extra))
    for row in errors:
        if canary_in(row):
            problems.append(f"canary in the error row of {row['source_url']}")
    for record in glob.glob(os.path.join(warehouse, "_runs", "*.json")):
        with open(record, encoding="utf-8") as handle:
            if canary_in(json.load(handle)):
                problems.append(f"canary in the run record {record}")
    if canary_in(output):
        problems.append("canary in the command's output")
    return problems
