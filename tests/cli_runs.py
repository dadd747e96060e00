"""Running the ``dicomwarehouse`` command, and what its errors must look like.

Most tests call ``cli.main`` in this process (``run_main``): what they check (the exit code,
stdout, the one stderr line) is decided in ``main``, and a fresh interpreter costs seconds
of imports (Beam, pyarrow, DuckDB) per call. ``run_cli`` runs the installed console script in
a subprocess, as a user does; a few tests keep it to prove that a real process, with its
import-time warnings and logging, also prints one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from dicomwarehouse.cli import main


def _console_script() -> list[str]:
    """The ``dicomwarehouse`` script pip installed beside this Python, else ``-m``."""
    script = Path(sys.executable).with_name("dicomwarehouse")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dicomwarehouse"]


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``dicomwarehouse ARGS`` command in a subprocess; ``env`` adds environment variables."""
    return subprocess.run(
        [*_console_script(), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def _process_state_kept() -> Iterator[None]:
    """Undo what ``main`` sets up for its process: logging (a root handler bound to the
    captured stderr, levels) and, should it install any, SIGINT and SIGTERM handlers.

    Left in place, every later test would log to a closed buffer, at ``main``'s levels, and
    handle signals as the command does.
    """
    root = logging.getLogger()
    pydicom_logger = logging.getLogger("pydicom")
    handlers, level, propagate = root.handlers[:], root.level, pydicom_logger.propagate
    signals = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        pydicom_logger.propagate = propagate
        for number, handler in signals.items():
            if handler is not None:  # None: installed outside Python, not ours to restore
                signal.signal(number, handler)


def run_main(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``dicomwarehouse ARGS`` as ``cli.main`` in this process, with stdout and stderr captured.

    Returns what ``run_cli`` returns, so the same assertions apply. argparse's errors exit
    (``SystemExit``) as they would in the script; their code is the return code. The capture
    is a redirect of ``sys.stdout``/``sys.stderr`` rather than ``capsys`` so module-scoped
    fixtures can run the command too.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        _process_state_kept(),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            code = main(list(args))
        except SystemExit as exc:
            if isinstance(exc.code, str):  # sys.exit("message") prints it and exits 1
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess(
        ["dicomwarehouse", *args], code, stdout.getvalue(), stderr.getvalue()
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    """An error in use: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0]
