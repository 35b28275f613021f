"""`auxreid synth` through the CLI: the dataset it writes (read back by the project's reader), what it prints, and
every refused option.

--cams 1, --size 10x and one success run (checking "wrote" and synth.json's size) are in tests/test_synth.py
(test_synth_cli_reports_and_rejects_bad_options); the generator itself (layouts, determinism, the refusal to
overwrite on `run_synth`) is tested there too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stages.data.duke import load_synth
from test_cli_train_round import invoke, refused, usage_error

#: A network written in well under a second.
SMALL = ["--ids", "5", "--test-ids", "3", "--distractors", "1", "--cams", "3", "--size", "32x16", "--frames", "2-3",
         "--tracklets-per-id", "3"]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _printed_counts(output: str) -> dict[str, list[int]]:
    """split -> [ids, tracklets, frames] from the printed table."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0] in ("train", "query", "gallery"):
            rows[cells[0]] = [int(cell.replace(",", "")) for cell in cells[1:]]
    return rows


def _read_counts(root: Path) -> dict[str, list[int]]:
    """split -> [ids, tracklets, frames] as the dataset reader sees the folder."""
    dataset = load_synth(str(root), dense_step=0)
    return {split: [len({t.person_id for t in tracklets}), len(tracklets), sum(len(t.frames) for t in tracklets)]
            for split, tracklets in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery))}


@pytest.mark.parametrize("layout", ["duke", "mars"])
def test_synth_writes_a_dataset_the_reader_loads_and_prints_its_counts(tmp_path, layout):
    out = tmp_path / "net"
    result = invoke("synth", "--out", out, "--layout", layout, "--seed", "1", *SMALL)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "synth.json").read_text())
    assert (info["layout"], info["seed"], info["cams"], info["size"], info["ids"]) == (layout, 1, 3, [32, 16], 5)
    printed = _printed_counts(result.output)
    assert printed == _read_counts(out)
    assert printed == {split: [row["ids"], row["tracklets"], row["frames"]] for split, row in info["counts"].items()
                       if split in ("train", "query", "gallery")}
    assert printed["query"] == [3, 3, printed["query"][2]]  # one query tracklet per test identity
    means = [edge["mean_s"] for edge in info["transit"].values()]
    lines = result.output.splitlines()
    assert f"synthetic camera network, {layout} layout" in result.output  # the title wraps (inside the path too)
    assert (f"3 cameras, {len(info['graph_edges'])} camera links (transit {min(means):.0f}-{max(means):.0f} s), "
            f"{info['fps']} fps, a frame every {info['frame_step']} video frames") in lines
    assert (f"same-camera overlaps (TOC): {info['toc']['train_pairs']} train pairs, "
            f"{info['toc']['query_gallery_pairs']} query-gallery pairs") in lines
    assert lines[-1].startswith(f"wrote {out} in ") and lines[-1].endswith(" s")
    assert (out / "info").is_dir() == (layout == "mars")
    assert [p.name for p in tmp_path.iterdir()] == ["net"]  # no staging folder left beside it


def test_synth_without_out_writes_under_auxreid_data(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXREID_DATA", str(tmp_path / "data"))
    result = invoke("synth", *SMALL)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "synth" / "synth.json").is_file()
    assert result.output.splitlines()[-1].startswith(f"wrote {tmp_path / 'data' / 'synth'} in ")


def test_synth_refuses_an_existing_dataset_until_forced(tmp_path):
    out = tmp_path / "net"
    assert invoke("synth", "--out", out, "--seed", "1", *SMALL).exit_code == 0
    before = _tree(out)
    line = refused(invoke("synth", "--out", out, "--seed", "2", *SMALL))
    assert line == f"error: {out} already exists; pass --force to replace it or choose another --out"
    assert _tree(out) == before
    forced = invoke("synth", "--out", out, "--seed", "2", "--force", *SMALL)
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "synth.json").read_text())["seed"] == 2 and _tree(out) != before
    assert [p.name for p in tmp_path.iterdir()] == ["net"]


def test_synth_force_never_replaces_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    line = refused(invoke("synth", "--out", mine, "--force", *SMALL))
    assert line == f"error: refusing to replace {mine}: it is not a synthetic dataset (no synth.json in it)"
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


@pytest.mark.parametrize(("args", "message"), [
    (["--frames", "8..24"], "frames '8..24' is not MIN-MAX; write it like 8-24 (or one number)"),
    (["--frames", "5-3"], "synth: min_frames is 5; expected 1..max_frames (3)"),
    (["--frames", "2-1000"], "synth: max_frames is 1000; expected <= 999 (MARS names hold three digits)"),
    (["--size", "8x32"], "synth: height is 8; expected 16..512 pixels"),
    (["--size", "64x4"], "synth: width is 4; expected 8..512 pixels"),
    (["--ids", "0"], "synth: ids is 0; expected >= 1"),
    (["--test-ids", "0"], "synth: test_ids is 0; expected >= 1"),
    (["--distractors", "-1"], "synth: distractors is -1; expected >= 0"),
    (["--tracklets-per-id", "51"], "synth: tracklets_per_id is 51; expected 2..50 (a test id needs a query and a "
                                   "gallery tracklet)"),
    (["--seed", "-1"], "synth: seed is -1; expected >= 0"),
    (["--ids", "9000", "--test-ids", "990", "--distractors", "10"],
     "synth: 10000 identities in all, but person ids have four digits (at most 9999)"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
def test_synth_refuses_each_bad_setting_before_writing(tmp_path, args, message):
    line = refused(invoke("synth", "--out", tmp_path / "net", *args))
    assert line == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "text"), [
    (["--layout", "dukemtmc"], "Invalid value for '--layout'"),
    (["--ids", "many"], "Invalid value for '--ids'"),
])
def test_synth_option_values_of_the_wrong_kind_are_usage_errors(tmp_path, args, text):
    usage_error(invoke("synth", "--out", tmp_path / "net", *args), text)
    assert list(tmp_path.iterdir()) == []
