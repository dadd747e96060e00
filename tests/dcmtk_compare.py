"""dicom_elements compared with DCMTK's dcmdump, element by element: an independent reader.

``dcmdump`` (Debian's dcmtk) prints every element it reads, nested sequences and what follows
Pixel Data included. Its output is parsed into tag paths in dicom_elements' form
(``00081115[0].0020000E``) with their VR and values, and compared with the rows our extract
makes of the same file. The comparison is what tests/test_dcmtk.py asserts on and what
docs/fidelity.md reports; run as a script it prints the agreement by VR::

    python tests/dcmtk_compare.py PATH [PATH ...]

Values are compared as each side normalises them: text without its trailing padding (and
DS/IS without leading spaces), numbers as numbers (FL to float32 precision), AT as 8 hex
digits. Binary values and sequences are compared by presence and VR only.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dicomwarehouse.dicom.extract import extract_object, new_run
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.tables.vr import BINARY_VRS, SINGLE_VALUE_TEXT_VRS

__all__ = [
    "Comparison",
    "DumpedElement",
    "compare_file",
    "dcmdump_available",
    "dcmdump_elements",
    "summarize",
]

DCMDUMP = shutil.which("dcmdump")
#: quiet, go on after errors, whole values, values in UTF-8, UIDs as numbers, no pixel data
#: loaded, non-ASCII and control characters quoted (so a value is one line), explicit UN of a
#: known tag given its dictionary VR (as pydicom and we do)
DCMDUMP_OPTIONS = ["-q", "+E", "+L", "+U8", "-Un", "-M", "+Qn", "+uc"]
#: dcmdump's own VR names: "up" is UL (DICOMDIR offsets), "??" an unknown VR (our UN)
_DCMTK_VR = {"up": "UL", "??": "UN"}
#: +U8 rewrites Specific Character Set to ISO_IR 192 (and adds it): not a reading difference
_REWRITTEN_BY_CONVERSION = "00080005"
_CHARACTER_REFERENCE = re.compile(r"&#(\d+);")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'"}

_LINE = re.compile(
    r"^(?P<indent> *)\((?P<group>[0-9a-f]{4}),(?P<element>[0-9a-f]{4})\) (?P<vr>\S\S) "
    r"(?P<value>.*?) *# *(?P<length>\d+|u/l), *(?P<vm>\d+) (?P<name>.*)$"
)
_INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "SV", "UV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_NO_VALUE_VRS = frozenset(BINARY_VRS) | {"SQ", "na", "pi", "ox", "xs", "lt", "up"}


@dataclass(frozen=True)
class DumpedElement:
    """One element as dcmdump printed it."""

    vr: str
    values: tuple[str, ...] | None  # None: a value dcmdump does not print as values


def dcmdump_available() -> bool:
    return DCMDUMP is not None


def _unquote(text: str) -> str:
    """dcmdump's +Qn quoting (XML character references, one per byte) back to text."""
    raw = _CHARACTER_REFERENCE.sub(lambda match: chr(int(match[1]) & 0xFF), text)
    for entity, character in _ENTITIES.items():
        raw = raw.replace(entity, character)
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return raw


def _values(vr: str, printed: str) -> tuple[str, ...] | None:
    if printed.startswith("(no value available)"):
        return ()
    if vr in _NO_VALUE_VRS or printed.startswith("(not loaded)") or printed.startswith("("):
        if vr == "AT" and printed.startswith("("):
            return tuple(f"{part[1:5]}{part[6:10]}".upper() for part in printed.split("\\") if part)
        return None
    if printed.startswith("[") and printed.endswith("]"):
        printed = printed[1:-1]
    parts = [printed] if vr in SINGLE_VALUE_TEXT_VRS else printed.split("\\")
    return tuple(_unquote(part) for part in parts)


def dcmdump_elements(path: str | os.PathLike[str]) -> dict[str, DumpedElement] | None:
    """Every element dcmdump prints for ``path``, by tag path; None when it reads nothing."""
    if DCMDUMP is None:
        return None
    result = subprocess.run(
        [DCMDUMP, *DCMDUMP_OPTIONS, str(path)], capture_output=True, timeout=120, check=False
    )
    text = result.stdout.decode("utf-8", "replace")
    elements: dict[str, DumpedElement] = {}
    # one frame per open level: (prefix of its elements' tag paths, last element's path and VR,
    # items seen in that element)
    prefixes: dict[int, str] = {0: ""}
    last: dict[int, tuple[str, str]] = {}
    items: dict[int, int] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        level = len(match["indent"]) // 2
        tag = f"{match['group']}{match['element']}".upper()
        vr = _DCMTK_VR.get(match["vr"], match["vr"])
        if tag.startswith("FFFE"):
            parent = last.get(level - 1)
            if tag == "FFFEE000" and parent is not None and parent[1] == "SQ":
                index = items.get(level - 1, 0)
                items[level - 1] = index + 1
                prefixes[level + 1] = f"{parent[0]}[{index}]."
            continue
        if level % 2:  # an element directly under an item level that is not an item
            continue
        prefix = prefixes.get(level)
        if prefix is None:
            continue
        path_key = prefix + tag
        last[level] = (path_key, vr)
        items[level] = 0
        elements[path_key] = DumpedElement(vr, _values(vr, match["value"]))
    return elements or None


def _ours(path: str | os.PathLike[str]) -> dict[str, DumpedElement] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extracted = extract_object(ObjectRef(str(path)), new_run())
    if extracted.elements is None:
        return None
    rows = extracted.elements.to_pydict()
    return {
        tag_path: DumpedElement(vr or "", None if values is None else tuple(values))
        for tag_path, vr, values in zip(
            rows["tag_path"], rows["vr"], rows["value_strings"], strict=True
        )
    }


def _normalized(vr: str, values: tuple[str, ...]) -> tuple[object, ...]:
    out: list[object] = []
    for value in values:
        text = value.rstrip("\0 ")
        if vr in ("DS", "IS"):
            text = text.strip()
        if vr in _INTEGER_VRS:
            try:
                out.append(int(text))
                continue
            except ValueError:
                pass
        if vr in _FLOAT_VRS:
            try:
                out.append(float(text))
                continue
            except ValueError:
                pass
        out.append(text)
    return tuple(out)


def _same_values(vr: str, ours: tuple[str, ...], theirs: tuple[str, ...]) -> bool:
    a, b = _normalized(vr, ours), _normalized(vr, theirs)
    if a == b:
        return True
    if (not a and all(v == "" for v in b)) or (not b and all(v == "" for v in a)):
        return True
    if vr in _FLOAT_VRS and len(a) == len(b):
        tolerance = 1e-6 if vr == "FL" else 1e-12
        return all(
            (
                isinstance(x, float)
                and isinstance(y, float)
                and (math.isclose(x, y, rel_tol=tolerance, abs_tol=1e-30) or x == y)
            )
            or x == y
            for x, y in zip(a, b, strict=True)
        )
    return False


_OUTCOMES = (
    "agree",
    "value_differs",
    "not_converted_by_dcmtk",
    "vr_differs",
    "only_dcmtk",
    "only_ours",
)


@dataclass
class Comparison:
    """Outcome counts of one or more files, by VR (DCMTK's VR when both have the element)."""

    agree: Counter[str] = field(default_factory=Counter)
    value_differs: Counter[str] = field(default_factory=Counter)
    vr_differs: Counter[str] = field(default_factory=Counter)
    only_dcmtk: Counter[str] = field(default_factory=Counter)
    only_ours: Counter[str] = field(default_factory=Counter)
    #: text DCMTK printed unconverted (its iconv has no ISO 2022 code extensions)
    not_converted_by_dcmtk: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: top-level elements after Pixel Data that DCMTK read and we did not: (file, tag)
    missed_after_pixel_data: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    unreadable: int = 0

    def add(self, other: Comparison) -> None:
        for name in _OUTCOMES:
            getattr(self, name).update(getattr(other, name))
        self.examples.extend(other.examples)
        self.missed_after_pixel_data.extend(other.missed_after_pixel_data)
        self.files += other.files
        self.unreadable += other.unreadable

    def _example(self, kind: str, path: str, key: str, detail: str) -> None:
        if len(self.examples) < 400:
            self.examples.append((kind, path, key, detail))


def compare_file(path: str | os.PathLike[str]) -> Comparison:
    """Compare one file's dicom_elements rows with dcmdump's reading of it."""
    comparison = Comparison(files=1)
    theirs = dcmdump_elements(path)
    ours = _ours(path)
    if theirs is None or ours is None:
        comparison.unreadable = 1
        return comparison
    name = str(path)
    for key, dumped in theirs.items():
        if key.endswith(_REWRITTEN_BY_CONVERSION):
            continue
        mine = ours.get(key)
        if mine is None:
            comparison.only_dcmtk[dumped.vr] += 1
            comparison._example("only_dcmtk", name, key, dumped.vr)
            if "." not in key and key > "7FE00010":
                comparison.missed_after_pixel_data.append((name, key))
            continue
        if mine.vr != dumped.vr:
            comparison.vr_differs[dumped.vr] += 1
            comparison._example("vr_differs", name, key, f"{mine.vr} vs {dumped.vr}")
            continue
        if dumped.values is None or mine.values is None:
            comparison.agree[dumped.vr] += 1
            continue
        if _same_values(dumped.vr, mine.values, dumped.values):
            comparison.agree[dumped.vr] += 1
        elif any("\x1b" in value or "\ufffd" in value for value in dumped.values):
            comparison.not_converted_by_dcmtk[dumped.vr] += 1
            detail = f"{mine.values[:3]!r} vs {dumped.values[:3]!r}"[:200]
            comparison._example("not_converted_by_dcmtk", name, key, detail)
        else:
            comparison.value_differs[dumped.vr] += 1
            detail = f"{mine.values[:3]!r} vs {dumped.values[:3]!r}"[:200]
            comparison._example("value_differs", name, key, detail)
    for key, mine in ours.items():
        if key not in theirs and not key.endswith(_REWRITTEN_BY_CONVERSION):
            comparison.only_ours[mine.vr] += 1
            comparison._example("only_ours", name, key, mine.vr)
    return comparison


def compare_files(paths: Iterable[str | os.PathLike[str]]) -> Comparison:
    total = Comparison()
    for path in paths:
        total.add(compare_file(path))
    return total


def summarize(comparison: Comparison) -> str:
    """The agreement by VR as a Markdown table."""
    vrs = sorted(set().union(*(getattr(comparison, name) for name in _OUTCOMES)))
    headers = ["agree", "value differs", "not converted by DCMTK", "VR differs"]
    headers += ["only DCMTK", "only ours"]
    lines = [
        "| VR | elements | " + " | ".join(headers) + " | agreement |",
        "| --- | ---: | " + " | ".join("---:" for _ in headers) + " | ---: |",
    ]
    totals: Counter[str] = Counter()
    for vr in [*vrs, None]:
        if vr is None:
            row = [totals[name] for name in _OUTCOMES]
        else:
            row = [getattr(comparison, name)[vr] for name in _OUTCOMES]
            totals.update(dict(zip(_OUTCOMES, row, strict=True)))
        count = sum(row)
        cells = " | ".join(f"{n:,}" for n in row)
        lines.append(f"| {vr or 'all'} | {count:,} | {cells} | {row[0] / max(count, 1):.3%} |")
    return "\n".join(lines)


def dicom_files(paths: Iterable[str]) -> Iterator[str]:
    for path in paths:
        if os.path.isdir(path):
            for root, _dirs, names in os.walk(path):
                for name in sorted(names):
                    yield os.path.join(root, name)
        else:
            yield path


def main(argv: list[str]) -> int:
    if not dcmdump_available():
        print("dcmdump is not installed (apt-get install dcmtk)", file=sys.stderr)
        return 2
    comparison = compare_files(dicom_files(argv))
    print(f"files: {comparison.files}, not readable by one side: {comparison.unreadable}")
    print(summarize(comparison))
    kinds = Counter(kind for kind, *_ in comparison.examples)
    print("examples kept:", dict(kinds))
    for kind, path, key, detail in comparison.examples:
        print(f"{kind}\t{Path(path).name}\t{key}\t{detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
