"""Every use of pydicom's internals, in one place, checked against the installed pydicom.

The reader needs three things pydicom's public API does not give at the speed or with the
laziness an ingest needs:

- the raw element store of a data set (``Dataset._dict``): iterating it yields each element as
  read, without converting values or loading values the read deferred, which
  ``Dataset.__getitem__`` and ``Dataset.elements()`` would do;
- the file meta reader (``filereader._read_file_meta_info``), to salvage files whose data set
  is damaged but whose meta group is not;
- the defer size inside sequence items: pydicom defers long values of the top-level data set
  only, so a private blob inside an undefined-length item (Philips keeps megabytes there) would
  be fetched from a bucket. ``install_item_deferral`` wraps ``filereader.read_dataset`` once,
  when a ranged read first asks for it, never at import.

``recovery`` wraps ``filereader.read_sequence`` and ``filereader.data_element_generator``
through ``wrap_filereader`` (on first use) for the recovery rules of damaged files.

``check_pydicom`` refuses a pydicom outside the versions these were checked with, and
tests/test_pydicom_boundary.py fails when pydicom changes under them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, BinaryIO

import pydicom
from pydicom import filereader
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset

__all__ = [
    "check_pydicom",
    "deferring_items",
    "install_item_deferral",
    "raw_elements",
    "read_file_meta",
    "wrap_filereader",
]

#: pydicom releases whose internals this module was checked against (major, minor).
SUPPORTED_PYDICOM = ((3, 0),)


def check_pydicom() -> None:
    """Raise ImportError unless the installed pydicom is one this module was checked with."""
    major, minor = (int(part) for part in pydicom.__version__.split(".")[:2])
    if (major, minor) not in SUPPORTED_PYDICOM:
        supported = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_PYDICOM)
        raise ImportError(
            f"pydicom {pydicom.__version__} is not supported (checked with {supported}.x): "
            "dicomwarehouse reads pydicom's raw element store"
        )


check_pydicom()


def raw_elements(dataset: Dataset) -> MutableMapping[Any, RawDataElement | DataElement]:
    """The data set's elements as read: raw until converted, deferred values left unread.

    Writable: replacing an entry (``element._replace(value=...)``) supplies a value that was
    deferred, without pydicom re-opening the file by name.
    """
    return dataset._dict


def read_file_meta(fp: BinaryIO) -> FileMetaDataset:
    """The file meta group at the current position of ``fp`` (after the preamble)."""
    return FileMetaDataset(filereader._read_file_meta_info(fp))


_nested = threading.local()
_install_lock = threading.Lock()
_wrapped: set[str] = set()


def wrap_filereader(name: str, attribute: str, make_wrapper: Callable[[Any], Any]) -> None:
    """Replace ``pydicom.filereader.<attribute>`` by ``make_wrapper(current)``, once per
    ``name`` and process, when first needed (never at import).

    pydicom looks these functions up as module attributes at each call, so a wrapper sees
    every element or data set it reads; the read budgets count through this.
    """
    if name in _wrapped:  # installed: no lock to take on every object
        return
    with _install_lock:
        if name in _wrapped:
            return
        setattr(filereader, attribute, make_wrapper(getattr(filereader, attribute)))
        _wrapped.add(name)


def _deferring_items(read_dataset: Any) -> Any:
    def read_dataset_deferring_items(*args: Any, **kwargs: Any) -> Dataset:
        """pydicom's ``read_dataset``, with the defer size also inside sequence items.

        Within ``deferring_items`` on this thread, items skip long values too; their offsets
        are offsets in the object, so they can be fetched later.
        """
        size = getattr(_nested, "defer_size", None)
        if (
            size is not None
            and not kwargs.get("at_top_level", True)
            and kwargs.get("defer_size") is None
        ):
            kwargs["defer_size"] = size
        return read_dataset(*args, **kwargs)

    return read_dataset_deferring_items


def install_item_deferral() -> None:
    """Wrap pydicom's ``read_dataset`` (once per process) so items can defer long values.

    Outside ``deferring_items`` the wrapper changes nothing, so other users of pydicom in the
    process read as before.
    """
    wrap_filereader("item-deferral", "read_dataset", _deferring_items)


@contextmanager
def deferring_items(defer_size: int | None) -> Iterator[None]:
    """Skip values longer than ``defer_size`` inside sequence items too (this thread only)."""
    if defer_size is not None:
        install_item_deferral()
    previous = getattr(_nested, "defer_size", None)
    _nested.defer_size = defer_size
    try:
        yield
    finally:
        _nested.defer_size = previous
