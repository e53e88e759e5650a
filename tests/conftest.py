"""Shared fixtures: repository paths and a runner for the `jointwsss` CLI and Snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SCANNET = REPO.parent / "shared" / "data" / "scannet"
BIN = Path(sys.executable).parent


def run_cmd(args, cwd=None, check=True, timeout=900):
    """Run a command with this interpreter's bin folder first on PATH; return the CompletedProcess."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def snakemake(args, workdir: Path, check=True, timeout=900):
    """Run snakemake on this repository's Snakefile inside ``workdir`` (outputs land there)."""
    exe = shutil.which("snakemake", path=str(BIN)) or "snakemake"
    return run_cmd([exe, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args], check=check, timeout=timeout)


@pytest.fixture
def repo() -> Path:
    return REPO
