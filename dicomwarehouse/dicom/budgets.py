"""Per-object read budgets: no object, however malformed, can stall a run or exhaust memory.

A header parse is bounded three ways, counted per object on the thread that parses it:

- elements: every data element and every sequence item the parser reads, nested ones too
  (``max_elements``); an item counts as ``ITEM_WEIGHT`` elements, as it costs the parser
  about that much (a data set of its own), so a sequence of empty items is bounded in time;
- header bytes: bytes fetched from the object, re-reads included (``max_header_bytes``);
  a read that would pass the budget is refused before it is made, so a length field of
  4 GiB costs nothing;
- progress: a run of empty elements repeating one tag, which is what zero or padding bytes
  parse as (a DICM preamble followed by zeros reads as (0000,0000) elements of length 0, one
  per 8 bytes), is stopped after ``max_empty_repeats``, and a run of empty sequence items
  after ``max_empty_items``, whatever the other budgets allow.

The defaults are sized for the largest real headers, not for the development corpus (whose
largest, 38,700 weighted elements, would fit 75 times over): IDC-scale archives hold enhanced
MR and CT of thousands of frames, TILED_SPARSE slides with one item per tile, and
segmentations with one item per frame of each segment. Measured on generated objects of those
shapes (``benchmarks/benchmark.py --large-headers``, docs/performance.md "Large headers"), a
frame costs 158 weighted elements in the heaviest enhanced MR of the corpus (Philips, private
per-frame items), 52 in a highdicom segmentation and 20 per tile of a slide; a header takes 3
to 6 us and 205 to 420 bytes of peak memory per weighted element, whatever its size. So:

- ``max_elements`` = 3,000,000 weighted elements admits an enhanced MR of that heaviest shape
  up to 19,000 frames, a segmentation of 57,000 frames and a slide of 150,000 tiles (the
  largest generated ones, 5,000 MR frames, 20,000 segmentation frames and 50,000 tiles, are at
  a quarter to a third of it); a real header at the budget takes at most about 18 s and 1.3 GB.
  An object over it is parsed up to it by each pass that reads it (the walker, pydicom, the
  salvage of what came before): a flood of items is stopped after at most about 75 s of CPU,
  at the measured 15 to 25 us per budgeted element of all passes together. The element count
  is what bounds time and memory: every element and item costs at least 8 bytes, so bytes
  alone would let 8 million elements through 64 MiB.
- ``max_header_bytes`` = 64 MiB bounds what the element count does not see: the bytes held,
  and the values decoded (an RTSTRUCT's contour data is one element per contour, of up to 64
  KiB, each of thousands of numbers). A header costs 0.3 to 0.6 us and 17 to 35 bytes of peak
  memory per byte read, whether it is many elements (the shapes above) or few long
  multi-valued ones (dense ``1\\1\\...`` text), so at the budget at most about 40 s and 2.5 GB.
  The largest generated headers need 2 to 10 MiB, the largest the corpus needed 4.2 MB (a
  Philips raw data object read whole), and a header at the element budget about 40 MiB.

An object over budget becomes an ingest_errors row whose error_type names the budget, or,
when a header was read before the budget ran out, a dicom_metadata row with an anomaly
saying so.

The counting wraps pydicom's element generator and data set reader (through
``pydicom_boundary.wrap_filereader``, on first use), the two places every element and item
pass through. Outside ``metering`` the wrappers only look up a thread-local and step aside.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dicomwarehouse.dicom.pydicom_boundary import raw_elements, wrap_filereader

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_MAX_HEADER_BYTES",
    "BudgetExceeded",
    "BudgetMeter",
    "ElementBudgetExceeded",
    "HeaderBytesBudgetExceeded",
    "NoProgress",
    "ReadBudget",
    "current_meter",
    "metering",
]

#: Weighted elements and items of one object (see the module docstring for the measurements).
DEFAULT_MAX_ELEMENTS = 3_000_000
#: What one sequence item counts against ``max_elements``.
ITEM_WEIGHT = 4
#: Bytes read from one object while parsing its header (the memory bound of values).
DEFAULT_MAX_HEADER_BYTES = 64 * 1024 * 1024
#: Consecutive empty elements with one tag in one data set before the parse is stopped.
DEFAULT_MAX_EMPTY_REPEATS = 64
#: Consecutive empty sequence items before the parse is stopped.
DEFAULT_MAX_EMPTY_ITEMS = 1024


@dataclass(frozen=True)
class ReadBudget:
    """What one object may cost to parse."""

    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_empty_repeats: int = DEFAULT_MAX_EMPTY_REPEATS
    max_empty_items: int = DEFAULT_MAX_EMPTY_ITEMS


class BudgetExceeded(Exception):
    """An object over one of its budgets; the class name is the ingest_errors error_type."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class ElementBudgetExceeded(BudgetExceeded):
    """More elements and items than ``max_elements``."""


class HeaderBytesBudgetExceeded(BudgetExceeded):
    """More bytes read than ``max_header_bytes``."""


class NoProgress(BudgetExceeded):
    """A run of empty elements repeating one tag: padding or zeros, not a header."""


class BudgetMeter:
    """One object's counts against its budget.

    Once a budget is exceeded the meter stays exceeded: pydicom turns some exceptions into
    others (an item it cannot read becomes ``OSError``), so the caller asks the meter, not the
    exception, why a parse stopped; and every later count raises again, so a parser that
    swallowed the first exception cannot go on.
    """

    def __init__(self, budget: ReadBudget) -> None:
        self.budget = budget
        self.elements = 0
        self.bytes_read = 0
        self.empty_items = 0
        self.exceeded: BudgetExceeded | None = None

    def restart(self) -> None:
        """A fresh count for a second pass over the same object (the salvage read)."""
        self.elements = 0
        self.bytes_read = 0
        self.empty_items = 0
        self.exceeded = None

    def _trip(self, exceeded: BudgetExceeded) -> BudgetExceeded:
        if self.exceeded is None:
            self.exceeded = exceeded
        return self.exceeded

    def charge_bytes(self, count: int, offset: int) -> None:
        """Account for a read of ``count`` bytes at ``offset``, before it is made."""
        if self.exceeded is not None:
            raise self.exceeded
        if self.bytes_read + count > self.budget.max_header_bytes:
            raise self._trip(
                HeaderBytesBudgetExceeded(
                    f"header reads would pass {self.budget.max_header_bytes} bytes "
                    f"(read of {count} bytes at byte {offset})",
                    offset,
                )
            )

    def record_bytes(self, count: int) -> None:
        """Bytes a read actually returned."""
        self.bytes_read += count

    def add_item(self) -> None:
        """One more data set (a sequence item, or the top level)."""
        if self.exceeded is not None:
            raise self.exceeded
        self.elements += ITEM_WEIGHT
        if self.elements > self.budget.max_elements:
            raise self._trip(self._too_many())

    def item_read(self, empty: bool) -> None:
        """An item was read; a long run of empty ones is padding, not content."""
        if not empty:
            self.empty_items = 0
            return
        self.empty_items += 1
        if self.empty_items > self.budget.max_empty_items:
            raise self._trip(
                NoProgress(f"more than {self.budget.max_empty_items} empty items in a row")
            )

    def _too_many(self) -> ElementBudgetExceeded:
        return ElementBudgetExceeded(
            f"more than {self.budget.max_elements} elements and items in one header"
        )

    def count(self, elements: Iterator[Any]) -> Iterator[Any]:
        """Pass one data set's elements through, counting them and watching for progress."""
        limit = self.budget.max_elements
        max_repeats = self.budget.max_empty_repeats
        last_tag = -1
        repeats = 0
        for element in elements:
            self.elements += 1
            if self.elements > limit:
                raise self._trip(self._too_many())
            if element.tag == last_tag and not _has_length(element):
                repeats += 1
                if repeats >= max_repeats:
                    raise self._trip(
                        NoProgress(
                            f"{repeats + 1} empty elements in a row with tag "
                            f"{int(last_tag):08X}: padding, not a header",
                            getattr(element, "value_tell", None),
                        )
                    )
            else:
                last_tag = element.tag
                repeats = 0
            yield element


def _has_length(element: Any) -> bool:
    length = getattr(element, "length", None)
    if length is None:  # a converted element (a sequence): it has content
        return True
    return bool(length)


_local = threading.local()


def current_meter() -> BudgetMeter | None:
    """The meter of the object being parsed on this thread, if any."""
    return getattr(_local, "meter", None)


@contextmanager
def metering(budget: ReadBudget | None = None) -> Iterator[BudgetMeter]:
    """Count the parse of one object on this thread against ``budget``.

    Nested use keeps the outer meter: the object's whole read and flatten share one budget.
    """
    outer = current_meter()
    if outer is not None:
        yield outer
        return
    install_counting()
    meter = BudgetMeter(budget or ReadBudget())
    _local.meter = meter
    try:
        yield meter
    finally:
        _local.meter = None


def _counting_element_generator(generate: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        elements = generate(*args, **kwargs)
        meter = current_meter()
        return elements if meter is None else meter.count(elements)

    return counted


def _counting_read_dataset(read_dataset: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        if meter is None:
            return read_dataset(*args, **kwargs)
        meter.add_item()
        dataset = read_dataset(*args, **kwargs)
        meter.item_read(not raw_elements(dataset))
        return dataset

    return counted


def install_counting() -> None:
    """Route pydicom's element generator and data set reader through the meters (once)."""
    wrap_filereader("budget-elements", "data_element_generator", _counting_element_generator)
    wrap_filereader("budget-datasets", "read_dataset", _counting_read_dataset)
