"""Run Beam pipelines from Jupyter as from a script.

Inside an IPython kernel Beam switches to its interactive mode: it renames every transform
after the notebook cell that applied it and imports ``apache_beam.runners.interactive``, which
imports Beam's DataFrame API, which fails to import with pandas 3 (``DataFrame.first`` is gone),
so ``dicomwarehouse.ingest`` failed in every notebook. The ingest needs none of that mode: it
builds and runs one pipeline to its end inside one call. So, while it does, Beam is told it is
not in IPython.

Beam asks through ``is_in_ipython`` from ``apache_beam.utils.interactive_utils``, imported by
name into the modules that ask (``pipeline``, the direct runner); each of those names is
replaced for the length of the ``with`` block and restored after it. A module missing in
another Beam release is skipped; Beam then behaves as it would unpatched.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

__all__ = ["beam_outside_ipython"]

#: The Beam modules that hold ``is_in_ipython`` by name.
_ASKING_MODULES = (
    "apache_beam.utils.interactive_utils",
    "apache_beam.pipeline",
    "apache_beam.runners.direct.direct_runner",
)


def _not_in_ipython() -> bool:
    return False


@contextlib.contextmanager
def beam_outside_ipython() -> Iterator[None]:
    """Within the block, Beam treats the process as a script, even in a Jupyter kernel."""
    saved = []
    for name in _ASKING_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "is_in_ipython"):
            saved.append((module, module.is_in_ipython))
            module.is_in_ipython = _not_in_ipython
    try:
        yield
    finally:
        for module, original in saved:
            module.is_in_ipython = original
