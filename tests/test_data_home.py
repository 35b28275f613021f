"""Tests for stages/data/__init__.py: load_dataset, the one entry point to the loaders (dense_step for every dataset)."""

from __future__ import annotations

from pathlib import Path

from helpers_data import mars_tree, touch_images
from stages.config import DataConfig, build_config
from stages.data import load_dataset


def test_manifest_and_mars_train_are_cut_by_dense_step_like_duke(tmp_path: Path) -> None:
    """data.dense_step is never ignored: a manifest's and MARS's train tracklets follow the same rule."""
    names = [f"a{k}.jpg" for k in range(5)]
    touch_images(tmp_path / "img", [*names, "q.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split,person_id,timestamp\n"
                        + "".join(f"img/{n},A,1,train,,{k}\n" for k, n in enumerate(names)) + "img/q.jpg,Q,2,query,1,9\n")
    whole = load_dataset(build_config(({"data": {"dataset": "manifest", "manifest": str(manifest)}}, "t")).data)
    assert [len(t.frames) for t in whole.train] == [5] and whole.meta["dense_step"] == 0  # a manifest's default
    cut = load_dataset(DataConfig(dataset="manifest", manifest=str(manifest), dense_step=2))
    assert [(t.name, len(t.frames), t.times[0]) for t in cut.train] == [("A#0", 2, 0.0), ("A#1", 3, 2.0)]
    assert [len(t.frames) for t in cut.query] == [1] and cut.fingerprint != whole.fingerprint
    mars = load_dataset(DataConfig(dataset="mars", root=str(mars_tree(tmp_path / "MARS")), dense_step=2))
    assert [len(t.frames) for t in mars.train] == [3, 2] and mars.meta["dense_step"] == 2
