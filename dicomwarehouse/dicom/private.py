"""Private data dictionary look-ups that forgive the spelling of the private creator.

Writers do not agree on the letter case of their own creators: Philips writes
``PHILIPS IMAGING DD 001`` where pydicom's private dictionary has ``Philips Imaging DD 001``,
and some pad with spaces or NULs. An exact look-up then leaves every implicit-VR private
element of the block untyped (UN, no value strings) and its sequences unparsed. The look-up
here tries the creator as written first, then the dictionary's creator that matches it
ignoring case and surrounding spaces; the caller records that fallback as an anomaly.

One function, ``private_entry(tag, creator)``, for whichever parser read the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import get_private_entry, private_dictionaries

__all__ = ["PrivateEntry", "private_entry"]


@dataclass(frozen=True, slots=True)
class PrivateEntry:
    """A private dictionary entry and the dictionary creator it was found under."""

    vr: str
    vm: str
    name: str
    creator: str
    #: False when the creator matched only ignoring case and surrounding spaces
    exact: bool


def _folded(creator: str) -> str:
    return creator.strip(" \0").casefold()


@lru_cache(maxsize=1)
def _creators_by_folded_name() -> dict[str, str]:
    folded: dict[str, str] = {}
    for creator in sorted(private_dictionaries):  # sorted: the same choice in every process
        folded.setdefault(_folded(creator), creator)
    return folded


@lru_cache(maxsize=65536)
def _lookup(tag: int, creator: str) -> PrivateEntry | None:
    dictionary_creator = creator if creator in private_dictionaries else None
    exact = dictionary_creator is not None
    if dictionary_creator is None:
        dictionary_creator = _creators_by_folded_name().get(_folded(creator))
    if dictionary_creator is None:
        return None
    try:
        vr, vm, name, _retired = get_private_entry(tag, dictionary_creator)
    except KeyError:
        return None
    return PrivateEntry(vr, vm, name, dictionary_creator, exact)


def private_entry(tag: int, creator: str | None) -> PrivateEntry | None:
    """The private dictionary entry of ``tag`` in the block of ``creator``, or None.

    ``tag`` is a private element (odd group, element gggg,xxEE with xx >= 0x10); ``creator``
    the value of its block's private creator element as read.
    """
    if not creator or not tag >> 16 & 1 or tag & 0xFF00 == 0:
        return None
    return _lookup(tag, creator)
