"""Store-level skips and `jointwsss info` on caches."""

from __future__ import annotations

import json


from jointwsss.info import summarize_stores
from jointwsss.io.zarr_store import create_store, open_store, write_array
from jointwsss.preprocess.correspondences import VisibilityParams, build_corr_store

from conftest import run_cmd


def test_a_view_without_visible_points_is_a_counted_skip(tiny_cache, tmp_path):
    scene = "scene0000_00"
    frames = open_store(tiny_cache / "frames" / f"{scene}.zarr", "frames")
    # a copy of the frames store whose second view has an all-zero depth map (a dead sensor frame)
    copy = tmp_path / "frames.zarr"
    group = create_store(copy, "frames", dict(frames.attrs))
    for name in frames.array_keys():
        data = frames[name][...]
        if name == "depth":
            data[1] = 0
        write_array(group, name, data, per_item=name in ("color", "depth", "label"))
    summary = build_corr_store(tiny_cache / "points" / f"{scene}.zarr", copy, tmp_path / "corr.zarr",
                               visibility=VisibilityParams())
    corr = open_store(tmp_path / "corr.zarr", "corr")
    assert corr.attrs["views_without_points"] == [1]
    assert corr.attrs["pairs_per_view"][1] == 0 and summary["views_without_points"] == 1
    offsets = corr["offsets"][...]
    assert offsets[1] == offsets[2] and offsets[-1] == summary["pairs"] > 0


def test_info_on_caches_reports_frames_points_and_label_agreement(tiny_cache):
    s = summarize_stores(tiny_cache, "scene0000_00")
    assert set(s["stores"]) == {"points", "frames", "corr"}
    assert s["frames"]["kept"] + sum(s["frames"]["dropped"].values()) == s["frames"]["sampled"]
    assert s["corr"]["pairs"] == sum(open_store(tiny_cache / "corr" / "scene0000_00.zarr", "corr").attrs["pairs_per_view"])
    assert s["label_agreement"]["agreement"] > 0.9
    out = run_cmd(["jointwsss", "info", str(tiny_cache / "corr" / "scene0000_00.zarr"), "--json"]).stdout
    assert json.loads(out)["label_agreement"] == s["label_agreement"]
    text = run_cmd(["jointwsss", "info", str(tiny_cache), "--scene", "scene0000_00"]).stdout
    assert "agreement" in text and "kept of" in text and "visible points per view" in text
