"""Shared fixtures: a temporary project folder and helpers to run workflow files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QFLOW = str(Path(sys.executable).with_name("qflow"))


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
