"""Tests of the synthetic camera network: layouts, determinism, splits, TOC overlaps, transit model, difficulty."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.data.duke import load_synth
from stages.data.synth import render as synth_render
from stages.data.synth.world import SynthSpec, camera_graph, parse_frames, parse_size, simulate, validate_spec
from stages.errors import AuxReidError
from stages.synth import run_synth

#: A network small enough to write in about a second.
TINY = {"ids": 6, "test_ids": 4, "distractors": 2, "cams": 4, "height": 32, "width": 16, "min_frames": 3, "max_frames": 5}
DUKE_NAME = re.compile(r"(train|query|gallery)/(\d{4})/(\d{4})/(\d{4})C(\d)F(\d{4})X(\d{5,})\.jpg")
MARS_NAME = re.compile(r"(\d{4}|00-1)C(\d)T(\d{4})F(\d{3})\.jpg")


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def default_duke(module_tmp) -> Path:
    """The default network (the one `make demo` uses), seed 0, written once for the module."""
    return run_synth(module_tmp.mktemp("default") / "synth", layout="duke", seed=0)


@pytest.fixture(scope="module")
def tiny_mars(module_tmp) -> Path:
    return run_synth(module_tmp.mktemp("mars") / "synth", layout="mars", seed=3, **TINY)


def _spans(dataset, split: str) -> tuple[np.ndarray, ...]:
    columns = dataset.arrays(split)
    return columns["person_id"], columns["camera"], columns["start"], columns["end"]


def test_run_synth_same_seed_writes_identical_bytes(tmp_path):
    for layout in ("duke", "mars"):
        first = run_synth(tmp_path / f"{layout}_a", layout=layout, seed=5, **TINY)
        second = run_synth(tmp_path / f"{layout}_b", layout=layout, seed=5, **TINY)
        assert _tree_digest(first) == _tree_digest(second)
    other = run_synth(tmp_path / "duke_c", layout="duke", seed=6, **TINY)
    assert _tree_digest(other) != _tree_digest(tmp_path / "duke_a")


def test_run_synth_duke_names_follow_the_real_dataset(default_duke):
    info = json.loads((default_duke / "synth.json").read_text())
    offsets = info["camera_offsets"]
    frames = sorted(p.relative_to(default_duke).as_posix() for p in default_duke.rglob("*.jpg"))
    parsed = [DUKE_NAME.fullmatch(f) for f in frames]
    assert all(parsed), next(f for f, m in zip(frames, parsed) if m is None)
    assert all(m.group(2) == m.group(4) for m in parsed)
    assert {int(m.group(5)) for m in parsed} == set(range(1, info["cams"] + 1))
    assert all(int(m.group(7)) >= 1 for m in parsed)
    dataset = load_synth(str(default_duke), dense_step=0)
    for split in ("train", "query", "gallery"):
        assert len(dataset.split(split)) == info["counts"][split]["tracklets"]
        assert sum(len(t.frames) for t in dataset.split(split)) == info["counts"][split]["frames"]
    tracklet = dataset.train[0]
    ranks = [int(DUKE_NAME.search(f).group(6)) for f in tracklet.frames]
    local = np.array([int(DUKE_NAME.search(f).group(7)) for f in tracklet.frames])
    assert ranks == list(range(1, len(ranks) + 1))
    assert np.all(np.diff(local) == info["frame_step"])
    expected = (local + offsets[tracklet.camera] - 1) / info["fps"]
    np.testing.assert_allclose(tracklet.times, expected)
    assert info["fps"] == 59.94 and info["frame_step"] == 12 and min(offsets) == 1


def test_run_synth_splits_like_the_real_datasets(default_duke):
    info = json.loads((default_duke / "synth.json").read_text())
    dataset = load_synth(str(default_duke), dense_step=0)
    train, query, gallery = (dataset.arrays(s) for s in ("train", "query", "gallery"))
    assert set(train["person_id"]).isdisjoint(query["person_id"])
    assert set(train["person_id"]).isdisjoint(gallery["person_id"])
    assert len(np.unique(query["person_id"])) == len(query["person_id"]) == info["test_ids"]
    assert len(np.unique(gallery["person_id"])) == info["test_ids"] + info["distractors"]
    for pid, cam in zip(query["person_id"], query["camera"]):
        same = gallery["person_id"] == pid
        assert np.any(same & (gallery["camera"] != cam))
    per_id = np.bincount(np.unique(train["person_id"], return_inverse=True)[1])
    assert len(per_id) == info["ids"] and np.mean(per_id >= 4) >= 0.75


def test_run_synth_cameras_hold_several_people_at_once(default_duke):
    info = json.loads((default_duke / "synth.json").read_text())
    dataset = load_synth(str(default_duke), dense_step=0)
    pid, cam, start, end = _spans(dataset, "train")
    same_cam = (cam[:, None] == cam[None, :]) & (start[:, None] <= end[None, :]) & (start[None, :] <= end[:, None])
    pairs = np.triu(same_cam, k=1)
    assert pairs.sum() == info["toc"]["train_pairs"] > 50
    assert not np.any(pairs & (pid[:, None] == pid[None, :]))
    q_pid, q_cam, q_start, q_end = _spans(dataset, "query")
    g_pid, g_cam, g_start, g_end = _spans(dataset, "gallery")
    cross = (q_cam[:, None] == g_cam[None, :]) & (q_start[:, None] <= g_end[None, :]) & (g_start[None, :] <= q_end[:, None])
    assert cross.sum() == info["toc"]["query_gallery_pairs"] > 5


def test_run_synth_person_is_never_in_two_places_at_once(default_duke):
    dataset = load_synth(str(default_duke), dense_step=0)
    columns = [dataset.arrays(s) for s in ("train", "query", "gallery")]
    pid, start, end = (np.concatenate([c[k] for c in columns]) for k in ("person_id", "start", "end"))
    order = np.lexsort((start, pid))
    same = pid[order][1:] == pid[order][:-1]
    assert np.all(start[order][1:][same] > end[order][:-1][same])


def test_run_synth_transit_gaps_follow_the_camera_graph_model(default_duke):
    info = json.loads((default_duke / "synth.json").read_text())
    dataset = load_synth(str(default_duke), dense_step=0)
    pid, cam, start, end = _spans(dataset, "train")
    order = np.lexsort((start, pid))
    same = pid[order][1:] == pid[order][:-1]
    a, b = cam[order][:-1][same], cam[order][1:][same]
    gaps = (start[order][1:] - end[order][:-1])[same]
    edges = {tuple(e) for e in info["graph_edges"]}
    assert all((min(x, y), max(x, y)) in edges for x, y in zip(a, b))
    checked = 0
    for key, model in info["transit"].items():
        src, dst = map(int, key.split("-"))
        on_edge = gaps[(a == src) & (b == dst)]
        if len(on_edge) < 8:
            continue
        tolerance = 4 * model["std_s"] / np.sqrt(len(on_edge)) + 0.05
        assert abs(on_edge.mean() - model["mean_s"]) < tolerance, key
        assert 0.5 * model["std_s"] < on_edge.std() < 1.6 * model["std_s"], key
        checked += 1
    assert checked >= 6
    means = [m["mean_s"] for m in info["transit"].values()]
    assert 10 <= min(means) and max(means) <= 60 and max(means) - min(means) > 20


def _histogram(frames: tuple[str, ...], *, centre: bool) -> np.ndarray:
    """Hellinger-normalised 8x8x8 RGB histogram of a tracklet (whole crop or its central body region)."""
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
    if centre:
        h, w = images.shape[1:3]
        images = images[:, h // 10 : h - h // 10, w // 4 : w - w // 4]
    bins = images.reshape(-1, 3).astype(np.int64) // 32
    counts = np.bincount((bins[:, 0] * 8 + bins[:, 1]) * 8 + bins[:, 2], minlength=512).astype(np.float64)
    return np.sqrt(counts / counts.sum())


def _market_map(distance: np.ndarray, q_pid, q_cam, g_pid, g_cam) -> float:
    """Market-protocol mAP: gallery items of the query's id and camera are ignored."""
    aps = []
    for i in range(len(q_pid)):
        keep = ~((g_pid == q_pid[i]) & (g_cam == q_cam[i]))
        relevant = g_pid[keep] == q_pid[i]
        aps.append(average_precision_score(relevant, -distance[i, keep]))
    return float(np.mean(aps))


def test_run_synth_colour_histograms_are_informative_but_imperfect(default_duke):
    dataset = load_synth(str(default_duke), dense_step=0)
    q, g = dataset.arrays("query"), dataset.arrays("gallery")
    ids = (q["person_id"], q["camera"], g["person_id"], g["camera"])
    scores = {}
    for centre in (False, True):
        fq = np.stack([_histogram(t.frames, centre=centre) for t in dataset.query])
        fg = np.stack([_histogram(t.frames, centre=centre) for t in dataset.gallery])
        scores[centre] = _market_map(1.0 - fq @ fg.T, *ids)
    chance = _market_map(np.random.default_rng(0).random((len(q["camera"]), len(g["camera"]))), *ids)
    print(f"colour-histogram mAP: body region {scores[True]:.3f}, whole crop {scores[False]:.3f}, chance {chance:.3f}")
    assert chance < 0.05
    assert 0.3 < scores[True] < 0.7
    assert 0.1 < scores[False] < 0.35


def test_run_synth_mars_layout_reads_like_mars(tiny_mars):
    info = json.loads((tiny_mars / "synth.json").read_text())
    names = (tiny_mars / "info" / "test_name.txt").read_text().split()
    assert all(MARS_NAME.fullmatch(n) for n in names)
    assert (tiny_mars / "bbox_test" / "00-1").is_dir() and (tiny_mars / "bbox_test" / "0000").is_dir()
    assert {p.name for p in (tiny_mars / "info").iterdir()} == {
        "train_name.txt", "test_name.txt", "tracks_train_info.mat", "tracks_test_info.mat", "query_IDX.mat"
    }
    dataset = load_synth(str(tiny_mars), dense_step=0)
    assert not dataset.has_times and dataset.num_cameras == info["cams"] == 4
    train, query, gallery = (dataset.arrays(s) for s in ("train", "query", "gallery"))
    assert len(train["camera"]) == info["counts"]["train"]["tracklets"]
    assert len(query["camera"]) == TINY["test_ids"] == len(np.unique(query["person_id"]))
    assert set(train["person_id"]).isdisjoint(query["person_id"])
    assert -1 not in gallery["person_id"] and 0 in gallery["person_id"]
    assert info["counts"]["junk_tracklets"] == info["junk"] == 1
    assert len(gallery["camera"]) == info["counts"]["gallery"]["tracklets"]


def test_run_synth_refuses_to_overwrite(tmp_path):
    out = run_synth(tmp_path / "synth", layout="duke", seed=1, **TINY)
    before = _tree_digest(out)
    with pytest.raises(AuxReidError) as error:
        run_synth(out, layout="duke", seed=2, **TINY)
    assert str(error.value) == f"{out} already exists; pass --force to replace it or choose another --out"
    assert _tree_digest(out) == before
    run_synth(out, layout="duke", seed=2, force=True, **TINY)
    assert _tree_digest(out) != before
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(AuxReidError, match=r"refusing to replace .*mine: it is not a synthetic dataset"):
        run_synth(other, layout="duke", seed=2, force=True, **TINY)
    assert (other / "notes.txt").read_text() == "keep"


def test_validate_spec_names_the_bad_setting():
    cases = {
        "cams": (1, "synth: cams is 1; expected 2..9 (a network needs two cameras; names hold one digit)"),
        "layout": ("dukemtmc", "synth: layout is 'dukemtmc'; expected one of duke, mars"),
        "tracklets_per_id": (1, "synth: tracklets_per_id is 1; expected 2..50 (a test id needs a query and a gallery tracklet)"),
        "height": (8, "synth: height is 8; expected 16..512 pixels"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(AuxReidError) as error:
            validate_spec(SynthSpec(**{name: value}))
        assert str(error.value) == message
    with pytest.raises(AuxReidError, match=r"^synth: 10000 identities in all, but person ids have four digits"):
        validate_spec(SynthSpec(ids=9000, test_ids=980))
    with pytest.raises(AuxReidError, match=r"^synth: unknown setting\(s\) colour$"):
        run_synth("unused", layout="duke", seed=0, colour=3)


def test_parse_size_and_frames_accept_only_their_format():
    assert parse_size("64x32") == (64, 32) and parse_size(" 128X64 ") == (128, 64)
    assert parse_frames("8-24") == (8, 24) and parse_frames("16") == (16, 16)
    with pytest.raises(AuxReidError) as error:
        parse_size("10x")
    assert str(error.value) == "size '10x' is not HEIGHTxWIDTH; write it like 64x32"
    with pytest.raises(AuxReidError) as error:
        parse_frames("8..24")
    assert str(error.value) == "frames '8..24' is not MIN-MAX; write it like 8-24 (or one number)"


def test_camera_graph_is_a_ring_with_chords():
    graph = camera_graph(8, np.random.default_rng(0))
    assert len(graph.edges) == 12
    assert np.all(np.bincount(graph.edges.ravel(), minlength=8) == 3)
    assert camera_graph(2, np.random.default_rng(0)).edges.tolist() == [[0, 1]]
    assert camera_graph(4, np.random.default_rng(0)).edges.tolist() == [[0, 1], [0, 3], [1, 2], [2, 3]]
    table = graph.neighbours(8)
    assert sorted(table[0].tolist()) == [1, 4, 7]


def test_simulate_walks_between_neighbouring_cameras():
    world = simulate(SynthSpec(seed=4, **TINY))
    t = world.tracklets
    edges = {tuple(e) for e in world.graph.edges.tolist()}
    consecutive = t.person[1:] == t.person[:-1]
    hops = zip(t.camera[:-1][consecutive].tolist(), t.camera[1:][consecutive].tolist())
    assert all((min(a, b), max(a, b)) in edges for a, b in hops)
    assert np.all(t.start[1:][consecutive] > t.end[:-1][consecutive])
    assert np.all(t.num_frames >= 3) and np.all(t.num_frames <= 5)
    assert np.bincount(t.split).tolist()[1] == TINY["test_ids"]


def test_synth_cli_reports_and_rejects_bad_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "bad"), "--cams", "1"])
    assert result.exit_code == 1
    assert "error: synth: cams is 1; expected 2..9" in result.output
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "bad"), "--size", "10x"])
    assert result.exit_code == 1
    assert "error: size '10x' is not HEIGHTxWIDTH; write it like 64x32" in result.output
    assert not (tmp_path / "bad").exists()
    args = ["synth", "--out", str(tmp_path / "ok"), "--seed", "2", "--ids", "6", "--test-ids", "4",
            "--distractors", "2", "--cams", "4", "--size", "32x16", "--frames", "3-5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "same-camera overlaps (TOC)" in result.output
    assert json.loads((tmp_path / "ok" / "synth.json").read_text())["size"] == [32, 16]


def test_render_draws_the_outfit_in_the_camera_tone():
    rng = np.random.default_rng(0)
    look = synth_render.sample_appearance(3, rng)
    red = dataclasses.replace(look, upper=np.tile(np.float32([200, 20, 20]), (3, 1)),
                              pattern=np.zeros(3, dtype=np.int64), bag=np.zeros(3, dtype=np.int64))
    cameras = synth_render.sample_cameras(2, rng, height=64, width=32)
    table = synth_render.frame_table(np.arange(3), np.array([0, 1, 1]), np.array([2, 2, 2]), cameras, rng,
                                     height=64, width=32)
    clear = dataclasses.replace(table, occluder=np.zeros(6, dtype=np.int64))
    images = synth_render.render(clear, red, cameras, np.random.default_rng(1), height=64, width=32)
    again = synth_render.render(clear, red, cameras, np.random.default_rng(1), height=64, width=32)
    assert images.shape == (6, 64, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again)
    chest = images[:, 20:24, 14:18].reshape(6, -1, 3).mean(axis=1)
    assert np.all(chest[:, 0] > 2.5 * chest[:, 1]) and np.all(chest[:, 0] > 2.5 * chest[:, 2])
    assert red.upper[0, 0] == 200 and look.upper[0, 0] != 200


def test_run_synth_leaves_nothing_behind_when_drawing_fails(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_render, "render", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_synth(tmp_path / "synth", layout="mars", seed=0, **TINY)
    assert list(tmp_path.iterdir()) == []
