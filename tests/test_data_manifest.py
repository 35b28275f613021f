"""Tests for stages/data/manifest.py: CSV and JSONL manifests, their times, and errors naming file and line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers_data import touch_images
from stages.data.manifest import load_manifest
from stages.errors import AuxReidError


def test_load_manifest_csv_with_timestamps(tmp_path: Path) -> None:
    touch_images(tmp_path / "img", ["a1.jpg", "a2.jpg", "b1.jpg", "c1.jpg"])
    absolute = tmp_path / "img" / "c1.jpg"
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,tracklet,camera,split,person_id,timestamp\n"
        "img/a2.jpg,A,10,train,,12.5\n"
        "img/a1.jpg,A,10,train,,12.0\n"
        "img/b1.jpg,B,2,query,7,3.25\n"
        f"{absolute},C,entrance,gallery,7,4\n"
    )
    data = load_manifest(str(manifest))
    assert data.meta["cameras"] == ["10", "2", "entrance"]
    assert data.camera_labels == ("10", "2", "entrance")  # index -> the manifest's own value, kept for display
    a = data.train[0]
    assert (a.name, a.person_id, a.camera, a.times) == ("A", -1, 0, (12.0, 12.5))
    assert a.frames == (str(tmp_path / "img/a1.jpg"), str(tmp_path / "img/a2.jpg"))
    assert [(t.name, t.person_id, t.camera) for t in data.query + data.gallery] == [("B", 7, 1), ("C", 7, 2)]
    assert (data.name, data.has_times, data.num_cameras, data.root) == ("manifest", True, 3, str(tmp_path))


def test_load_manifest_sorts_integer_cameras_numerically(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split\na.jpg,1,10,train\nb.jpg,2,2,train\nc.jpg,3,1,train\n")
    data = load_manifest(str(manifest))
    assert data.meta["cameras"] == ["1", "2", "10"]
    assert data.camera_labels == ("1", "2", "10")
    assert [t.camera for t in data.train] == [2, 1, 0]
    assert (data.has_times, data.train[0].times, data.fps) == (False, None, None)


def test_load_manifest_csv_frame_with_manifest_wide_fps(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "# recorded at the lab\n# fps = 25\n"
        "path,tracklet,camera,split,frame,fps\n"
        "a.jpg,t1,cam,train,50,\n"
        "b.jpg,t1,cam,train,25,\n"
        "c.jpg,t2,cam,train,100,50\n"
    )
    data = load_manifest(str(manifest))
    assert [t.times for t in data.train] == [(1.0, 2.0), (2.0,)]
    assert data.train[0].frames[0].endswith("b.jpg") and data.fps == 25.0


def test_load_manifest_jsonl_keeps_file_order_without_times(tmp_path: Path) -> None:
    touch_images(tmp_path / "x", ["2.png", "1.png", "3.png"])
    manifest = tmp_path / "m.jsonl"
    rows = [{"fps": 10},
            {"path": "x/2.png", "tracklet": 5, "camera": "north", "split": "train", "frame": 30},
            {"path": "x/1.png", "tracklet": 5, "camera": "north", "split": "train"},
            {"path": "x/3.png", "tracklet": 6, "camera": "south", "split": "gallery", "person_id": 4, "frame": 7}]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_manifest(str(manifest))
    assert [os.path.basename(f) for f in data.train[0].frames] == ["2.png", "1.png"]
    assert (data.has_times, data.train[0].times, data.gallery[0].person_id, data.gallery[0].name) == (False, None, 4, "6")


def test_load_manifest_jsonl_with_frame_and_fps(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.jpg", "b.jpg"])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": "b.jpg", "tracklet": "t", "camera": 1, "split": "train", "frame": 60, "fps": 30}) + "\n"
        + json.dumps({"path": "a.jpg", "tracklet": "t", "camera": 1, "split": "train", "timestamp": 1.5}) + "\n"
    )
    data = load_manifest(str(manifest))
    assert data.train[0].times == (1.5, 2.0) and data.has_times


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,tracklet,camera,split\nmissing.jpg,t,1,train\n", "{m} line 2: image {d}/missing.jpg does not exist"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\nb.jpg,t,1,query\n",
         "{m} line 3: tracklet 't' has split 'query' but 'train' on line 2; a tracklet has one split"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\nb.jpg,t,2,train\n",
         "{m} line 3: tracklet 't' has camera '2' but '1' on line 2; a tracklet has one camera"),
        ("path,tracklet,camera,split,timestap\na.jpg,t,1,train,3\n",
         "{m} line 1: unknown column 'timestap'; allowed: path, tracklet, camera, split, person_id, timestamp, frame, fps"),
        ("path,tracklet,split\na.jpg,t,train\n", "{m} line 1: missing column 'camera'; required: path, tracklet, camera, split"),
        ("path,tracklet,camera,split\na.jpg,t,1,test\n", "{m} line 2: split is 'test', expected one of train, query, gallery"),
        ("path,tracklet,camera,split,frame\na.jpg,t,1,train,4\n",
         "{m} line 2: frame given without fps; add an fps column or a '# fps = 25' line before the header"),
        ("path,tracklet,camera,split,frame,timestamp\na.jpg,t,1,train,4,0.5\n", "{m} line 2: give either timestamp or frame, not both"),
        ("path,tracklet,camera,split,timestamp\na.jpg,t,1,train,soon\n", "{m} line 2: timestamp is 'soon', expected a finite number"),
        ("path,tracklet,camera,split,person_id\na.jpg,t,1,train,x7\n",
         "{m} line 2: person_id is 'x7', expected an integer within int64 (or empty for unknown)"),
        ("# fsp = 25\npath,tracklet,camera,split\na.jpg,t,1,train\n", "{m}: unknown manifest setting 'fsp'; known settings: fps"),
        ("path,tracklet,camera,split\na.jpg,t,1,query\n", "{m} has no train rows; at least the train split is needed"),
        ("path,tracklet,camera,split\n", "{m} lists no frames; add one row per frame (columns path, tracklet, camera, split)"),
        ("path,tracklet,camera,split\na.jpg,,1,train\n", "{m} line 2: tracklet is empty"),
        ("path,tracklet,camera,split\na.jpg,t,1,train\n./a.jpg,u,1,train\n",
         "{m} line 3: image {d}/a.jpg is already listed on line 2"),
    ],
    ids=["missing-image", "two-splits", "two-cameras", "unknown-column", "missing-column", "bad-split", "no-fps",
         "both-times", "bad-number", "bad-person", "unknown-setting", "no-train", "empty", "empty-tracklet", "duplicate"],
)
def test_load_manifest_bad_input_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    touch_images(tmp_path, ["a.jpg", "b.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(AuxReidError) as error:
        load_manifest(str(manifest))
    assert str(error.value) == message.format(m=manifest, d=tmp_path)


def test_load_manifest_bad_file(tmp_path: Path) -> None:
    with pytest.raises(AuxReidError, match=f"^file {tmp_path}/m.csv is missing; it should be a .csv or .jsonl manifest"):
        load_manifest(str(tmp_path / "m.csv"))
    (tmp_path / "m.txt").write_text("path\n")
    with pytest.raises(AuxReidError, match=f"^manifest {tmp_path}/m.txt must end in .csv or .jsonl, found '.txt'$"):
        load_manifest(str(tmp_path / "m.txt"))
    (tmp_path / "m.jsonl").write_text('{"path": "a.jpg", "tracklet": 1, "camera": 1, "split": "train"}\n[1]\n')
    touch_images(tmp_path, ["a.jpg"])
    with pytest.raises(AuxReidError, match=f"^{tmp_path}/m.jsonl line 2: expected a JSON object, found list$"):
        load_manifest(str(tmp_path / "m.jsonl"))


def test_load_manifest_partial_times_means_no_times(tmp_path: Path) -> None:
    touch_images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,tracklet,camera,split,timestamp\nb.jpg,t,1,train,2\na.jpg,t,1,train,1\nc.jpg,u,1,train,\n")
    data = load_manifest(str(manifest))
    assert data.has_times is False and data.train[0].times is None
    assert [os.path.basename(f) for f in data.train[0].frames] == ["a.jpg", "b.jpg"]
