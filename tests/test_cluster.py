"""The shipped SLURM profile against a real SLURM (tests/slurm_cluster.py) and multi-process training
through the train rule: preprocessing and training as SLURM jobs equal local runs, a cancelled job and a job
over its memory limit fail cleanly, and a two-rank DDP run that loses a rank fails and resumes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, command_env, run_cmd, snakemake, snakemake_command, write_config
from slurm_cluster import PARTITION, ClusterUnavailable, SlurmCluster, missing_programs

pytestmark = pytest.mark.slow

PROFILE = REPO / "workflow" / "profiles" / "slurm"
# On top of the shipped profile, as-is: this cluster has no accounting database (squeue, not sacct, knows
# the finished jobs), and its jobs start within a second (no need to wait 40 s before the first status check).
SLURM_RUN = ["--profile", str(PROFILE), "--slurm-status-command", "squeue",
             "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs"]
CACHE = Path("data/tiny/cache")   # tiny.yaml's cache_dir and runs_dir, relative to a workdir
RUNS = Path("data/tiny/runs")
STAGE_OF_RULE = {"points": "points", "frames": "frames", "correspondences": "corr"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM is not installed here ({', '.join(missing)} not found): "
                    "apt-get install slurmctld slurmd slurm-client munge (.ci/run does this when run as root)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the Snakemake SLURM executor plugin is not installed: pip install snakemake-executor-plugin-slurm")
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
    except ClusterUnavailable as err:
        slurm.stop()
        pytest.skip(str(err))
    except BaseException:
        slurm.stop()
        raise
    yield slurm
    slurm.stop()


def tiny_config(workdir: Path, raw_dir: Path | None = None, **overrides) -> Path:
    """tiny.yaml without the image pretraining; ``raw_dir`` shares already synthesized scans."""
    path = write_config(workdir, pretrain__image="none", **overrides)
    if raw_dir is not None:
        cfg = yaml.safe_load(path.read_text())
        cfg["dataset"]["raw_dir"] = str(raw_dir)
        path.write_text(yaml.safe_dump(cfg))
    return path


def slurm_snakemake(cluster: SlurmCluster, workdir: Path, args: list[str], check=True, timeout=600):
    """snakemake with the shipped SLURM profile, run from ``workdir``; returns (CompletedProcess, run id)."""
    proc = run_cmd(snakemake_command([*SLURM_RUN, *args], workdir), cwd=workdir, check=check, timeout=timeout,
                   env=cluster.env())
    return proc, run_id(proc.stdout + proc.stderr)


def start_slurm_snakemake(cluster: SlurmCluster, workdir: Path, args: list[str]) -> subprocess.Popen:
    """The same in the background; its output goes to ``workdir/snakemake.out``."""
    out = open(workdir / "snakemake.out", "w")
    return subprocess.Popen(snakemake_command([*SLURM_RUN, *args], workdir), cwd=workdir, stdout=out,
                            stderr=subprocess.STDOUT, text=True, env=command_env(cluster.env()))


def run_id(output: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", output)
    assert match, output
    return match.group(1)


def jobs_of_run(cluster: SlurmCluster, run: str) -> list[dict]:
    """The run's SLURM jobs with their rule and wildcard values (from the comment the executor sets:
    ``rule_<rule>_wildcards_<values joined by _>``)."""
    jobs = []
    for job in cluster.jobs():
        if job["name"] != run:
            continue
        match = re.fullmatch(r"rule_(.+?)(?:_wildcards_(.*))?", job["comment"])
        assert match, job
        jobs.append({**job, "rule": match.group(1), "wildcards": match.group(2) or ""})
    return jobs


def zarr_arrays(store: Path) -> dict[str, np.ndarray]:
    """Every array of a Zarr store by path, read with zarr."""
    import zarr

    with warnings.catch_warnings():   # Snakemake's .snakemake_timestamp inside a directory() output
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        group = zarr.open_group(str(store), mode="r")
    out = {}

    def walk(g, prefix):
        for name, array in g.arrays():
            out[prefix + name] = array[...]
        for name, sub in g.groups():
            walk(sub, f"{prefix}{name}/")

    walk(group, "")
    return out


def assert_same_caches(cache: Path, reference: Path, scenes: list[str]) -> None:
    for stage in ("points", "frames", "corr"):
        for scene in scenes:
            got, want = zarr_arrays(cache / stage / f"{scene}.zarr"), zarr_arrays(reference / stage / f"{scene}.zarr")
            assert sorted(got) == sorted(want) and got, (stage, scene, sorted(got))
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{stage}/{scene}.zarr/{name}")
    for split in ("train", "val"):
        assert json.loads((cache / "index" / f"{split}.json").read_text()) == json.loads(
            (reference / "index" / f"{split}.json").read_text())


@pytest.fixture(scope="module")
def preprocessed(cluster, tmp_path_factory):
    """The tiny dataset preprocessed twice: locally (the reference) and through SLURM."""
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("remote")
    snakemake(["--cores", "2", "preprocess", "--configfile", str(tiny_config(local))], local)
    t0 = time.monotonic()
    proc, run = slurm_snakemake(cluster, remote, ["preprocess", "--configfile", str(tiny_config(remote))])
    seconds = time.monotonic() - t0
    scenes = (local / "raw" / "scannetv2_train.txt").read_text().split() + (
        local / "raw" / "scannetv2_val.txt").read_text().split()
    return {"local": local, "remote": remote, "run": run, "output": proc.stdout + proc.stderr, "scenes": scenes,
            "seconds": seconds}


def test_preprocess_runs_one_slurm_job_per_scene_and_stage_and_equals_a_local_run(cluster, preprocessed):
    jobs = jobs_of_run(cluster, preprocessed["run"])
    scenes = preprocessed["scenes"]
    assert len(scenes) == 3
    per_rule: dict[str, list[str]] = {}
    for job in jobs:
        assert job["state"] == "COMPLETED", job
        per_rule.setdefault(job["rule"], []).append(job["wildcards"])
    # synthesis, then every stage once per scene, one index per split; `preprocess` itself is a local rule
    assert {rule: sorted(w) for rule, w in per_rule.items() if rule in STAGE_OF_RULE} == {
        rule: sorted(scenes) for rule in STAGE_OF_RULE}, per_rule
    assert sorted(per_rule["index"]) == ["train", "val"]
    assert sorted(per_rule["synth_scannet"]) == sorted(scenes)
    assert "preprocess" not in per_rule
    # each job ran on the partition and with the memory and time the profile asks for
    details = cluster.job_details(next(j["id"] for j in jobs if j["rule"] == "frames"))
    assert (details["Partition"], details["MinMemoryNode"], details["TimeLimit"]) == (PARTITION, "8000M", "01:00:00")
    remote, local = preprocessed["remote"], preprocessed["local"]
    assert_same_caches(remote / CACHE, local / CACHE, scenes)
    # the executor kept each job's SLURM log beside the workdir
    assert len(list((remote / ".snakemake" / "slurm_logs" / "rule_frames").glob("*/*.log"))) == 3
    print(f"preprocess through SLURM: {len(jobs)} jobs in {preprocessed['seconds']:.0f} s")


def test_training_runs_as_a_slurm_job_with_the_rules_resources_and_equals_a_local_run(cluster, preprocessed):
    local, remote = preprocessed["local"], preprocessed["remote"]
    # one DataLoader worker: the rule asks for 2 threads (main process + worker)
    overrides = dict(train__num_workers=1, train__device="cpu")
    proc, run = slurm_snakemake(cluster, remote, ["train", "--configfile", str(tiny_config(remote, **overrides))])
    (job,) = jobs_of_run(cluster, run)
    assert (job["rule"], job["wildcards"], job["state"]) == ("train_experiment", "joint", "COMPLETED")
    details = cluster.job_details(job["id"])
    assert details["NumCPUs"] == "2" and details["MinMemoryNode"] == "8000M", details
    assert "gpu" not in details.get("TresPerNode", ""), details      # train.gpus: 0 asks for none
    snakemake(["--cores", "2", "train", "--configfile", str(tiny_config(local, **overrides))], local)
    got = torch_load(remote / RUNS / "joint" / "model.pt")["models"]
    want = torch_load(local / RUNS / "joint" / "model.pt")["models"]
    assert set(got) == set(want) == {"image", "point"}
    for net in want:
        assert got[net].keys() == want[net].keys()
        for key in want[net]:
            assert got[net][key].equal(want[net][key]), (net, key)


def torch_load(path: Path) -> dict:
    from jointwsss.runs import load_checkpoint

    return load_checkpoint(path)


def workdir_with_local_caches(workdir: Path, preprocessed) -> Path:
    """``workdir`` whose cache folder is the local run's (already preprocessed), for training jobs."""
    (workdir / CACHE).parent.mkdir(parents=True)
    (workdir / CACHE).symlink_to(preprocessed["local"] / CACHE)
    return workdir


def test_a_job_cancelled_mid_write_leaves_no_finished_store_and_a_rerun_completes(cluster, preprocessed, tmp_path):
    raw = preprocessed["local"] / "raw"
    cfg = tiny_config(tmp_path, raw_dir=raw)
    proc = start_slurm_snakemake(cluster, tmp_path, ["preprocess", "--configfile", str(cfg)])
    cancelled = None
    try:
        deadline = time.monotonic() + 300
        while cancelled is None and time.monotonic() < deadline and proc.poll() is None:
            # a store being written: atomic_path's hidden temporary beside the final name
            for tmp in (tmp_path / CACHE).glob("*/.*.zarr.tmp-*"):
                stage, scene = tmp.parent.name, tmp.name[1:].split(".zarr")[0]
                rule = next(r for r, s in STAGE_OF_RULE.items() if s == stage)
                run = run_id((tmp_path / "snakemake.out").read_text())
                job = next((j for j in jobs_of_run(cluster, run) if (j["rule"], j["wildcards"]) == (rule, scene)
                            and j["state"] == "RUNNING"), None)
                if job is not None:
                    subprocess.run(["scancel", job["id"]], env=cluster.env(), check=True, timeout=30)
                    cancelled = (job["id"], stage, scene)
                    break
            time.sleep(0.02)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    out = (tmp_path / "snakemake.out").read_text()
    assert cancelled is not None, f"no store was caught mid-write:\n{out}"
    job_id, stage, scene = cancelled
    assert proc.returncode != 0, out
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED" in out, out
    assert not (tmp_path / CACHE / stage / f"{scene}.zarr").exists()
    # nothing downstream of the cancelled store was built
    assert not (tmp_path / CACHE / "index" / ("val.json" if scene == preprocessed["scenes"][-1] else "train.json")).exists()

    slurm_snakemake(cluster, tmp_path, ["preprocess", "--configfile", str(cfg)])
    assert_same_caches(tmp_path / CACHE, preprocessed["local"] / CACHE, preprocessed["scenes"])


def test_a_job_over_its_memory_limit_fails_and_the_error_names_its_logs(cluster, preprocessed, tmp_path):
    """The training job given less memory than the trainer needs: SLURM kills it, and the user is pointed at
    the rule's log and at the job's SLURM log, which says why."""
    workdir = workdir_with_local_caches(tmp_path, preprocessed)
    cfg = tiny_config(workdir, raw_dir=preprocessed["local"] / "raw")
    proc, run = slurm_snakemake(cluster, workdir, ["train", "--set-resources", f"train_experiment:mem_mb={MEMORY_LIMIT_MB}",
                                                   "--configfile", str(cfg)], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    (job,) = jobs_of_run(cluster, run)
    assert job["state"] in ("FAILED", "OUT_OF_MEMORY"), job
    assert cluster.job_details(job["id"])["MinMemoryNode"] == f"{MEMORY_LIMIT_MB}M"
    rule_log = workdir / "logs" / "train" / "joint.log"
    slurm_log = workdir / ".snakemake" / "slurm_logs" / "rule_train_experiment" / "joint" / f"{job['id']}.log"
    assert f"log: {rule_log}, {slurm_log}" in out, out
    # the killed trainer wrote nothing (show-failed-logs says so); the SLURM log names the step and the limit
    assert f"Logfile {rule_log}: empty file" in out, out
    assert re.search(r"StepId=\d+\.0 exceeded memory limit \(\d+ > 209715200\), being killed", slurm_log.read_text())
    assert not (workdir / RUNS / "joint" / "model.pt").exists()


# The job's memory: above what Snakemake's job step needs (~155 MB resident), below what the trainer needs
# (importing torch and the networks alone takes ~245 MB).
MEMORY_LIMIT_MB = 200


def rank_process(rank: int, workdir: Path) -> int | None:
    """PID of the training process of ``rank`` (RANK in its environment) running in ``workdir``."""
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
            environ = (proc_dir / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(proc_dir / "cwd")
        except OSError:
            continue
        is_trainer = b"train" in cmdline and not any(arg.endswith(b"torchrun") for arg in cmdline)
        if is_trainer and cwd == str(workdir) and f"RANK={rank}".encode() in environ:
            return int(proc_dir.name)
    return None


def test_two_rank_training_through_the_rule_stays_in_sync_fails_cleanly_and_resumes(cluster, preprocessed, tmp_path):
    """train.gpus: 2 on CPU: the rule asks SLURM for two GPUs and launches torchrun (gloo); rank 1 is killed
    during epoch 2, the run fails without a hang or a half checkpoint, and a rerun resumes after epoch 1."""
    from jointwsss.networks import build_networks
    from jointwsss.runs import load_checkpoint
    from jointwsss.train import parameters_sha256

    workdir = workdir_with_local_caches(tmp_path, preprocessed)
    cfg = tiny_config(workdir, raw_dir=preprocessed["local"] / "raw", train__gpus=2, train__device="cpu",
                      train__epochs=2, train__batch_size=2)
    run_dir = (workdir / RUNS / "joint").resolve()
    proc = start_slurm_snakemake(cluster, workdir, ["train", "--configfile", str(cfg)])
    killed = None
    try:
        deadline = time.monotonic() + 400
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            metrics = run_dir / "metrics.jsonl"
            if metrics.exists() and metrics.read_text().count("\n") >= 1:   # epoch 1 checkpointed
                pid = rank_process(1, workdir)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed, killed_at = pid, time.time()
            time.sleep(0.05)
        proc.wait(timeout=180)      # no hang: torchrun stops rank 0, the job ends, Snakemake notices
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
    out = (workdir / "snakemake.out").read_text()
    assert killed is not None, out
    assert proc.returncode != 0, out
    (job,) = jobs_of_run(cluster, run_id(out))
    assert job["state"] == "FAILED", job
    details = cluster.job_details(job["id"])
    assert details["TresPerNode"] == "gres:gpu:2", details       # the GPUs the rule asks for
    ended_after_s = datetime.fromisoformat(details["EndTime"]).timestamp() - killed_at   # 1 s resolution
    assert ended_after_s < 60, details
    log = (workdir / "logs" / "train" / "joint.log").read_text()
    assert "torchrun" in out and "exitcode" in log and "-9" in log, log   # torchrun names the killed rank
    assert not (run_dir / "model.pt").exists()
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 0   # the last whole checkpoint: epoch 1
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not list(run_dir.glob(".*tmp*"))

    slurm_snakemake(cluster, workdir, ["train", "--configfile", str(cfg)])
    log = (workdir / "logs" / "train" / "joint.log").read_text()
    assert "resuming after epoch 1" in log, log
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    digest = re.search(r"ranks in sync \(all 2 replicas hold identical weights, parameter sha256 (\w+)\)", log)
    assert digest, log
    final = load_checkpoint(run_dir / "model.pt")
    nets = dict(zip(("image", "point"), build_networks(final["settings"])))
    for name, net in nets.items():
        net.load_state_dict(final["models"][name])
    assert parameters_sha256(nets) == digest.group(1)    # every rank held exactly the weights rank 0 saved
    print(f"two-rank job ended {ended_after_s:.0f} s after rank 1 was killed")
