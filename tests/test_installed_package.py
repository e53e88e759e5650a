"""The package as `pip install .` installs it (not editable): everything it reads ships inside it.

A wheel of the project goes into a fresh virtual environment; the dependencies come from this environment through a
path file, so the test costs seconds, not a second PyTorch install. The workflow files (Snakefile, rules/, workflow/,
config.yaml) are copied apart from the source tree, as a user who pip-installed the package and keeps the workflow
has them, so neither the Snakefile nor a job can import the checkout's `jointwsss`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY


def _run(args, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A fresh venv holding the project's wheel: its bin folder, its python and an environment to run it in."""
    root = tmp_path_factory.mktemp("installed")
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=600)
    (wheel,) = wheels.glob("jointwsss-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    python = bin_dir / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's site-packages, after the new venv's own: torch, numpy, snakemake... (plain path lines
    # process no nested .pth, so the editable install of the checkout stays invisible)
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(root), "PYTHONNOUSERSITE": "1"}
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], root, env)
    return {"root": root, "bin": bin_dir, "python": python, "site": site, "env": env}


def test_the_installed_package_is_the_wheel_and_holds_its_resources(installed):
    code = ("import jointwsss, jointwsss.config as c, jointwsss.io.scannet_labels as s;"
            "print(jointwsss.__file__); print(c.SCHEMA_PATH.is_file()); print(s.split_path('val').is_file())")
    out = _run([installed["python"], "-c", code], installed["root"], installed["env"]).stdout.split()
    assert Path(out[0]).is_relative_to(installed["site"]), out  # not the checkout
    assert out[1:] == ["True", "True"]


def test_installed_synth_preprocess_and_one_training_epoch(installed):
    """`jointwsss synth scannet` for one scene with the defaults, then the tiny config's `preprocess` and one epoch
    of `train`, all through the installed package (the jobs call the venv's `jointwsss`)."""
    root, env, bin_dir = installed["root"], installed["env"], installed["bin"]
    _run([bin_dir / "jointwsss", "synth", "scannet", "--out", root / "one", "--scene", "scene0000_00",
          "--settings", json.dumps({"frames_per_scene": 6})], root, env)
    assert sorted(p.name for p in (root / "one" / "scans" / "scene0000_00").iterdir()) == [
        "scene0000_00.sens", "scene0000_00.txt", "scene0000_00_2d-label-filt.zip", "scene0000_00_vh_clean_2.labels.ply",
        "scene0000_00_vh_clean_2.ply"]

    workflow = root / "workflow_copy"
    workflow.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workflow / name)
    for name in ("rules", "workflow", "envs"):
        shutil.copytree(REPO / name, workflow / name)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["train"]["epochs"] = 1
    cfg["train"]["milestones"] = []
    (root / "tiny1.yaml").write_text(yaml.safe_dump(cfg))
    work = root / "work"
    smk = [installed["python"], "-m", "snakemake", "-s", workflow / "Snakefile", "-d", work, "--cores", "2"]
    _run([*smk, "preprocess", "--configfile", root / "tiny1.yaml"], root, env)
    assert (work / "data/tiny/cache/index/train.json").is_file()
    _run([*smk, "train", "--configfile", root / "tiny1.yaml"], root, env)
    lines = (work / "data/tiny/runs/joint/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]
    assert (work / "data/tiny/runs/joint/model.pt").is_file()
    log = (work / "logs/tiny/train/joint.log").read_text()
    assert "train joint: done" in log
