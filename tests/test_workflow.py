"""The Snakemake workflow: lint-clean, a readable config error, and the `data` target end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run_cmd, snakemake, write_config

from jointwsss.synth.scannet import WORLD_VERSION


def test_lint_is_clean(tmp_path):
    proc = snakemake(["--lint", "--configfile", str(write_config(tmp_path))], tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


def test_snakefile_and_rules_are_snakefmt_formatted():
    """`snakefmt --check` (line length from pyproject.toml) passes on the Snakefile and every rule file; the
    test extra installs snakefmt, so CI always runs this."""
    import shutil

    exe = shutil.which("snakefmt", path=str(BIN))
    if exe is None:
        pytest.skip("snakefmt is not installed -- pip install -e '.[test]' installs it")
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    assert len(files) >= 10
    proc = run_cmd([exe, "--check", *map(str, files)], cwd=REPO, check=False)
    assert proc.returncode == 0, f"run `snakefmt Snakefile rules/` to format:\n{proc.stdout}{proc.stderr}"


def test_misspelled_config_key_fails_and_names_the_key(tmp_path):
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace("frames_per_scene", "frames_per_scen")
    cfg.write_text(text)
    proc = snakemake(["-n", "data", "--configfile", str(cfg)], tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "synth.frames_per_scen: unknown key (did you mean 'frames_per_scene'?)" in out, out


def test_download_source_without_base_url_names_the_key(tmp_path):
    cfg = write_config(tmp_path, dataset__source="download", dataset__max_scenes_per_split=1)
    proc = snakemake(["-n", "data", "--configfile", str(cfg)], tmp_path, check=False)
    assert proc.returncode != 0
    assert "scannet.base_url is empty" in proc.stdout + proc.stderr


def test_dry_run_plans_one_job_per_scene(tmp_path):
    proc = snakemake(["-n", "data", "--configfile", str(write_config(tmp_path))], tmp_path)
    out = proc.stdout
    # tiny.yaml: 2 train + 1 val + 1 pretrain scene, one metadata job, one `data` target
    assert "synth_scannet 4" in " ".join(out.split()), out
    assert "synth_scannet_meta" in out


def test_mxnet_imagenet_weights_are_converted_once_before_training(tmp_path):
    """model.image.weights naming PSA's .params: rule import_imagenet_weights writes the state dict the
    training run reads (a dry run: the file only has to exist)."""
    params = tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params"
    params.write_bytes(b"")
    cfg_path = write_config(tmp_path)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg.setdefault("model", {}).setdefault("image", {}).update(width="full", weights=str(params))
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(["-n", "-p", "train", "--configfile", str(cfg_path)], tmp_path)
    out = " ".join(proc.stdout.split())
    assert "import_imagenet_weights 1" in out and "train_experiment 1" in out, out
    converted = f"{cfg['cache_dir']}/weights/ilsvrc-cls_rna-a1_cls1000_ep-0001.pt"
    assert f"jointwsss weights import {params} {converted}" in out, out
    assert converted in out.split("rule train_experiment:", 1)[1].split("output:", 1)[0], out  # its input


def test_inference_jobs_take_eval_threads_and_training_jobs_their_workers(tmp_path):
    """eval.threads sets the cores (and torch threads) of infer and diagnose_experiment; training keeps the main
    process plus train.num_workers. A dry run prints each job's command with its threads."""

    def commands(**overrides):
        cfg = write_config(tmp_path, **overrides)
        proc = snakemake(["-n", "-p", "--cores", "8", "diagnose", "--configfile", str(cfg)], tmp_path)
        text = " ".join(proc.stdout.split())
        rules = ("infer", "diagnose_experiment")
        threads = {rule: re.findall(rf"rule {rule}:.*?--threads (\d+)", text) for rule in rules}
        return threads, text

    default, _ = commands(train__num_workers=2)
    assert default == {"infer": ["1", "1"], "diagnose_experiment": ["1", "1"]}, default
    chosen, text = commands(train__num_workers=2, eval__threads=3)
    assert chosen == {"infer": ["3", "3"], "diagnose_experiment": ["3", "3"]}, chosen
    assert "--num-workers $((3 - 1))" in text, text   # training: the main process and its 2 workers


@pytest.mark.slow
def test_data_target_writes_the_synthetic_dataset_and_info_reads_it(tmp_path):
    cfg = write_config(tmp_path)
    proc = snakemake(["--cores", "1", "--verbose", "data", "--configfile", str(cfg)], tmp_path)
    # One scheduling pass per job: the Snakefile drops the CLI's default job rate limit, whose timers
    # would add a pass per second per finished job (10 passes for these 6 jobs without the fix).
    log = proc.stdout + proc.stderr
    jobs = int(re.search(r"^total\s+(\d+)", log, re.M).group(1))
    assert log.count("Resources before job selection") <= jobs, log
    raw = tmp_path / "raw"
    assert (raw / "scannetv2-labels.combined.tsv").read_bytes() == (
        REPO / "jointwsss" / "resources" / "scannet" / "scannetv2-labels.combined.tsv").read_bytes()
    train = (raw / "scannetv2_train.txt").read_text().split()
    val = (raw / "scannetv2_val.txt").read_text().split()
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    # the pretrain scene is numbered after the others and is listed in no split file
    assert (raw / "scans" / "scene0003_00" / "scene0003_00_2d-label-filt.zip").stat().st_size > 0
    assert not (raw / "scannetv2_pretrain.txt").exists()
    for scene in train + val:
        d = raw / "scans" / scene
        for suffix in (".sens", ".txt", "_vh_clean_2.ply", "_vh_clean_2.labels.ply", "_2d-label-filt.zip"):
            assert (d / f"{scene}{suffix}").stat().st_size > 0
        assert (tmp_path / "logs" / "synth_scannet" / f"{scene}.log").exists()
    # nothing to do on a second run
    again = snakemake(["-n", "data", "--configfile", str(cfg)], tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr

    scene_dir = raw / "scans" / train[0]
    summary = json.loads(run_cmd(["jointwsss", "info", "--json", str(scene_dir)]).stdout)
    assert summary["sens"]["frames"] == 12
    assert summary["sens"]["color"]["width"] == 96 and summary["sens"]["depth"]["width"] == 64
    assert summary["sens"]["invalid_poses"] >= 1
    assert {"wall", "floor"} <= set(summary["labels_3d"]["classes"])
    assert summary["labels_2d"]["frames"] == 12
    text = run_cmd(["jointwsss", "info", str(scene_dir)]).stdout
    assert "12 frames" in text and "invalid poses" in text and "3D classes" in text


def job_counts(dry_run_output: str) -> dict[str, int]:
    """{rule: number of jobs} from the job-stats table of `snakemake -n`."""
    counts: dict[str, int] = {}
    in_table = False
    for line in dry_run_output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                break
    return counts


@pytest.mark.slow
def test_rerun_semantics_after_config_changes(tmp_path):
    cfg = write_config(tmp_path)
    snakemake(["--cores", "2", "preprocess", "--configfile", str(cfg)], tmp_path)

    def planned(**changes):
        text = yaml.safe_load(cfg.read_text())
        for dotted, value in changes.items():
            section, key = dotted.split("__")
            text.setdefault(section, {})[key] = value
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump(text))
        proc = snakemake(["-n", "preprocess", "--configfile", str(changed)], tmp_path)
        return job_counts(proc.stdout + proc.stderr), proc.stdout + proc.stderr

    counts, out = planned()
    assert counts == {}, out                      # touching nothing reruns nothing
    assert "Nothing to be done" in out

    counts, out = planned(frames__skip=2)         # 2 train + 1 val scenes
    assert counts == {"frames": 3, "correspondences": 3, "index": 2, "preprocess": 1}, out

    counts, out = planned(correspondences__depth_tolerance=0.05)
    assert counts == {"correspondences": 3, "index": 2, "preprocess": 1}, out

    counts, out = planned(labels__min_points=5)
    assert counts == {"points": 3, "correspondences": 3, "index": 2, "preprocess": 1}, out

    # Raw data that an earlier world wrote: its synth job recorded another world version in its params. That scene
    # is remade, and its caches after it.
    records = [path for path in (tmp_path / ".snakemake" / "metadata").iterdir()
               if json.loads(path.read_text())["rule"] == "synth_scannet"]
    scene = json.loads(records[0].read_text())["log"][0].rsplit("/", 1)[-1].removesuffix(".log")
    for path in records:
        record = json.loads(path.read_text())
        if record["log"][0].endswith(f"/{scene}.log"):
            assert f"'{WORLD_VERSION}'" in record["params"]           # Snakemake records each param quoted
            record["params"] = ["'0.9'" if p == f"'{WORLD_VERSION}'" else p for p in record["params"]]
            path.write_text(json.dumps(record))
    counts, out = planned()
    assert counts == {"synth_scannet": 1, "frames": 1, "points": 1, "correspondences": 1, "index": 1,
                      "preprocess": 1}, out


@pytest.mark.slow
def test_tiny_pipeline_trains_evaluates_exports_and_reports(tmp_path):
    cfg = write_config(tmp_path)
    text = yaml.safe_load(cfg.read_text())
    text["cache_dir"], text["runs_dir"] = str(tmp_path / "cache"), str(tmp_path / "runs")
    cfg.write_text(yaml.safe_dump(text))
    snakemake(["--cores", "2", "--configfile", str(cfg)], tmp_path)          # default target: report assets
    runs = tmp_path / "runs"
    metrics = json.loads((runs / "joint" / "eval" / "metrics.json").read_text())
    assert metrics["splits"]["train"]["mode"] == "pseudo_label" and metrics["splits"]["val"]["mode"] == "inference"
    for split in ("train", "val"):
        for domain in ("3d", "2d"):
            m = metrics["splits"][split][domain]
            assert 0.0 <= m["miou"] <= 1.0 and len(m["confusion"]) == 20 and len(m["confusion"][0]) == 21
    assert (runs / "joint" / "model.pt").exists() and (runs / "joint" / "eval" / "curves.png").stat().st_size > 0
    assert list((runs / "joint" / "eval" / "overlays_val").glob("*.png"))
    assert list((runs / "joint" / "eval" / "submission_val").glob("scene*.txt"))
    viewer = runs / "joint" / "eval" / "viewer"
    val_scenes = (tmp_path / "raw" / "scannetv2_val.txt").read_text().split()
    assert sorted(p.name for p in viewer.glob("*.html")) == sorted([f"{s}.html" for s in val_scenes] + ["index.html"])
    table = (runs / "joint" / "eval" / "metrics.tsv").read_text().splitlines()
    assert len(table) == 22 and table[-1].startswith("mIoU")
    proc = snakemake(["-n", "diagnose", "--configfile", str(cfg)], tmp_path)   # the default target diagnosed already
    assert "Nothing to be done" in proc.stdout + proc.stderr
    for split in ("train", "val"):
        diagnosis = json.loads((runs / "joint" / "diagnose" / f"{split}.json").read_text())
        assert (runs / "joint" / "diagnose" / f"{split}.tsv").read_text().splitlines()[-1].startswith("all")
        assert diagnosis["split"] == split and {"coverage", "teacher", "student", "features"} <= set(diagnosis)
        assert diagnosis["student"]["seen"]["vertices"] + diagnosis["student"]["unseen"]["vertices"] == sum(
            sum(row) for row in metrics["splits"][split]["3d"]["confusion"])
    snakemake(["--report", str(tmp_path / "report.html"), "--configfile", str(cfg)], tmp_path)
    html = (tmp_path / "report.html").read_text(errors="ignore")
    assert "curves.png" in html and "metrics.tsv" in html and "val.tsv" in html
    # the viewer pages are embedded whole (each is self-contained, so it works from inside the report)
    assert f"data:text/html;charset=utf8;filename={val_scenes[0]}.html;base64," in html
    assert "data:text/html;charset=utf8;filename=index.html;base64," in html
