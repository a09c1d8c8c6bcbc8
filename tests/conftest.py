"""Shared fixtures: a temporary project folder, helpers to run workflow files, S3 on loopback
(moto's server) for the store at a URL, and a Dask cluster on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QFLOW = str(Path(sys.executable).with_name("qflow"))
MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder (outside any project) that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in ``cwd`` with this interpreter; capture text output."""
    environment = {**os.environ, "PYTHONHASHSEED": "random", **env}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment)


def run_qflow(*args: str, cwd: Path, code: int | None = 0, env: dict | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed ``qflow`` command; check its exit code unless ``code`` is None."""
    proc = subprocess.run([QFLOW, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)
    if code is not None:
        assert proc.returncode == code, f"qflow {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def new_project(base: Path, project: str, workflow: str, source: str) -> Path:
    """``qflow init -p PROJECT`` in ``base`` with the file tracker, and a workflow ``WORKFLOW``
    whose workflow.py is ``source`` (empty parameters and inputs); returns the project root."""
    run_qflow("init", "-p", project, cwd=base)
    root = base / project
    run_qflow("configure", "-c", "tracker=file", cwd=root)
    folder = root / "workflows" / workflow
    folder.mkdir()
    (folder / "workflow.py").write_text(source)
    (folder / "config.yaml").write_text("defaults:\n  - project\n  - _self_\ninputs: {}\n"
                                        "parameters: {}\n")
    return root


def finished_steps(folder: Path, logs: str = "*/events.jsonl") -> dict[str, dict]:
    """The node entries of the ``node_finished`` events logged so far in the event logs
    ``logs`` under ``folder`` (by default every run's, ``folder`` being a runs folder); a run
    killed mid-way keeps them."""
    import json

    found = {}
    for log in folder.glob(logs):
        for line in log.read_bytes().split(b"\n"):
            with contextlib.suppress(ValueError):  # a line being written
                event = json.loads(line)
                if event["event"] == "node_finished":
                    found[event["node"]["id"]] = event["node"]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on loopback, started once per test session."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/store`` on the moto server, with its endpoint and dummy
    credentials in the environment (inherited by subprocesses)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import fsspec

    bucket = f"qflow-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(bucket)
    return f"s3://{bucket}/store"


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop ``proc``'s process group (a dask worker is a nanny and its child)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def _dask_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two single-thread ``dask worker``s on 127.0.0.1, each in its own
    process group, in a folder that is no project (workers cannot import the tests' code)."""
    here = tmp_path_factory.mktemp("dask-cluster")
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = str(Path(sys.executable).with_name("dask"))
    quiet = {"cwd": here, "start_new_session": True, "stdout": subprocess.DEVNULL,
             "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--dashboard-address", ":0"], **quiet)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1",
                                           "--dashboard-address", ":0"], **quiet))
        yield address
    finally:
        for proc in reversed(procs):
            _stop_group(proc)


@pytest.fixture
def dask_cluster(_dask_processes: str) -> str:
    """The address of the session's Dask cluster, once both of its workers are up (a test
    may have killed one: its nanny starts it again)."""
    from distributed import Client

    with Client(_dask_processes, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return _dask_processes
