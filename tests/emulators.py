"""Object stores on 127.0.0.1 for the bucket tests: gcp-storage-emulator and a moto server.

Each fixture starts the real server as a subprocess on a free port and stops it at the end
of the session. They skip (with the reason) only when the emulator package is not installed;
both are in the ``test`` extra, so CI runs them.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout} s")


def start_server(module: str, args: list[str], port: int) -> subprocess.Popen:
    # output to DEVNULL: a server holding the test runner's pipes would outlive its own end
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
    except Exception:
        process.kill()
        raise
    return process


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def require(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{package} is not installed (pip install -e '.[test]')")


@dataclass(frozen=True)
class Server:
    endpoint: str
    process: subprocess.Popen


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Server]:
    """gcp-storage-emulator, in memory; STORAGE_EMULATOR_HOST points clients at it."""
    require("gcp_storage_emulator", "gcp-storage-emulator")
    require("google.cloud.storage", "google-cloud-storage")
    port = free_port()
    process = start_server(
        "gcp_storage_emulator",
        ["start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"],
        port,
    )
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    try:
        yield Server(endpoint, process)
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        stop_server(process)


def start_moto() -> Server:
    require("moto", "moto[server]")
    require("boto3", "boto3")
    port = free_port()
    process = start_server("moto.server", ["-H", "127.0.0.1", "-p", str(port)], port)
    return Server(f"http://127.0.0.1:{port}", process)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Server]:
    """A moto server; clients reach it with an endpoint URL and any credentials."""
    server = start_moto()
    keys = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    previous = {name: os.environ.get(name) for name in keys}
    os.environ.update(keys)
    try:
        yield server
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_server(server.process)


def gcs_client():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


def s3_client(endpoint: str, **keys: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.get("key", "testing"),
        aws_secret_access_key=keys.get("secret", "testing"),
    )
