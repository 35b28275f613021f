"""docs/own-cameras.md, run as written: its command blocks are read out of the page, so the page cannot drift.

A folder laid out like the checkout (configs/ linked in, the cameras of tests/helpers_cameras.py written to
data/cams/) is the working directory. Every `auxreid` command of the page runs in-process, as written; `init` gets
the tiny settings of helpers_cameras appended as --set, so the run takes seconds. The page's `make round` runs the
same loop through make, in its own test marked slow. Then: the page's example manifest is the generated one, the
cameras keep their labels from the manifest through the artifacts into the export, the summaries, the figures and
the browse pages, and epoch times read as dates there.
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auxreid_cli.main import app
from helpers_cameras import CAMERAS, COLUMNS, FRAMES, TRAIN_PEOPLE, manifest_rows, tiny_set_args, write_cameras
from helpers_make import make_env
from stages.artifacts.h5 import read_artifact

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "own-cameras.md"
RUN = "cams"
runner = CliRunner()


def doc_blocks(language: str) -> list[str]:
    """The fenced blocks of docs/own-cameras.md tagged `language`, in page order."""
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def doc_commands() -> list[list[str]]:
    """Every command line of the page's `sh` blocks, split as the shell splits it (comments dropped)."""
    return [words for block in doc_blocks("sh") for line in block.splitlines()
            if (words := shlex.split(line, comments=True))]


def checkout_like(folder: Path, *links: str) -> Path:
    """`folder` with the checkout's `links` linked in and the cameras written where the page says: data/cams/."""
    for name in ("configs", *links):
        (folder / name).symlink_to(ROOT / name)
    write_cameras(folder / "data" / "cams")
    return folder


def _cells(output: str) -> dict[str, str]:
    """The two-column summary rows of a command's output, key -> value."""
    return {cells[0]: cells[1] for line in output.splitlines()
            if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 2}


@pytest.fixture(scope="module")
def walked(module_tmp):
    """The page's `auxreid` commands run in order in a checkout-like folder: (folder, command line -> output)."""
    home = checkout_like(module_tmp.mktemp("own_cameras"))
    outputs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        patch.setenv("AUXREID_ARTIFACTS", str(home / "artifacts"))  # the default, artifacts/ in the working folder
        for words in doc_commands():
            if words[0] != "auxreid":
                continue
            result = runner.invoke(app, [*words[1:], *(tiny_set_args() if words[1] == "init" else [])])
            assert result.exit_code == 0, (words, result.output)
            outputs[shlex.join(words)] = result.output
    return home, outputs


def test_the_page_runs_every_stage_and_shows_every_view():
    commands = [shlex.join(words) for words in doc_commands()]
    assert commands[:2] == ["auxreid datasets show --dataset manifest --manifest data/cams/manifest.csv",
                            "make round RUN=cams CONFIG=configs/manifest.yaml DATA=data/cams/manifest.csv"]
    stages = [words[1] for words in doc_commands() if words[0] == "auxreid"]
    assert stages == ["datasets", "init", "extract", "mine-aux", "evaluate", "cluster", "train-round", "evaluate",
                      "status", "report", "browse", "export", "inspect", "inspect"]


def test_the_pages_example_manifest_is_the_generated_one():
    [block] = doc_blocks("csv")
    header, *rows = list(csv.reader(block.splitlines()))
    assert tuple(header) == COLUMNS
    generated = manifest_rows()
    assert len(rows) == 5 and all(tuple(row) in generated for row in rows)


def test_datasets_show_names_the_cameras_and_shows_epoch_times_as_dates(walked):
    _, outputs = walked
    output = outputs["auxreid datasets show --dataset manifest --manifest data/cams/manifest.csv"]
    assert "camera labels (index order): gate, lobby, street" in output.splitlines()
    rows = {cells[0]: cells for line in output.splitlines()
            if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 9}
    assert rows["train"] == ["train", "0", "18", "72", "3", "4", "4.0", "4", "2026-03-01 14:00:00–14:04:11"]
    assert rows["query"][-1] == "2026-03-01 14:04:00–14:05:21"


def test_the_camera_labels_travel_through_the_artifacts(walked):
    home, _ = walked
    run = home / "artifacts" / RUN
    for path in (run / "round_001" / "features.h5", run / "round_001" / "clusters.h5", run / "aux.h5",
                 run / "round_001" / "test_features.h5"):
        assert read_artifact(path)["camera_labels"].tolist() == list(CAMERAS), path


def test_export_names_each_tracklet_and_its_camera(walked):
    home, _ = walked
    folder = home / "artifacts" / RUN / "round_001" / "export"
    with open(folder / "pseudo_labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    train = [f"p{person}-{camera}" for person in range(TRAIN_PEOPLE) for camera in CAMERAS]
    assert sorted(row["tracklet_name"] for row in rows) == sorted(train)
    assert [row["camera_label"] for row in rows] == [row["tracklet_name"].split("-")[1] for row in rows]
    assert [CAMERAS[int(row["camera"])] for row in rows] == [row["camera_label"] for row in rows]
    with np.load(folder / "pseudo_labels.npz", allow_pickle=False) as npz:
        assert npz["camera_labels"].tolist() == list(CAMERAS)
        assert npz["camera_label"].tolist() == [row["camera_label"] for row in rows]
    lines = (folder / "train_list.txt").read_text().splitlines()
    assert lines and all(line.split(" ")[2] in ("0", "1", "2") for line in lines)  # torchreid's camid: the index


def test_summaries_name_the_cameras_and_show_the_time_span_as_dates(walked):
    _, outputs = walked
    aux = _cells(outputs["auxreid inspect artifacts/cams/aux.h5 --plot artifacts/cams/transit.png"])
    assert aux["cameras"] == "3: gate, lobby, street"
    assert aux["time span"] == "2026-03-01 14:00:00–14:06:11"
    clusters = _cells(outputs["auxreid inspect artifacts/cams/round_001/clusters.h5 --montage 0 --out "
                              "artifacts/cams/cluster0.png"])
    assert clusters["cameras"] == "3: gate, lobby, street"
    home, _ = walked
    for picture in ("report.png", "transit.png", "cluster0.png"):
        assert (home / "artifacts" / RUN / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_browse_pages_show_camera_labels_tracklet_names_and_readable_times(walked):
    home, _ = walked
    site = home / "artifacts" / RUN / "browse"
    round_page = (site / "round_001" / "index.html").read_text(encoding="utf-8")
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", round_page)
    assert len(captions) == 18 and all(re.fullmatch(r"(gate|lobby|street) · 2026-03-01 14:0\d:\d\d", c)
                                       for c in captions), captions
    noise_filter = re.search(r'<select data-key="camera" data-op="eq"><option value="">any</option>(.*?)</select>',
                             round_page).group(1)
    options = re.findall(r'<option value="(\d)">(\w+)</option>', noise_filter)
    assert options and all(CAMERAS[int(index)] == label for index, label in options)  # filtered by index, shown by label
    cluster = (site / "round_001" / "clusters" / "c00000.html").read_text(encoding="utf-8")
    lanes = re.findall(r'<text x="4" y="\d+">([^<]*)</text>', cluster)
    assert lanes and set(lanes) <= set(CAMERAS)
    members = re.findall(r'<a href="\.\./\.\./tracklets/t0000\.html#t\d+">(p\d-(\w+))</a>.*?</td><td>(\w+)</td>'
                         r"<td>(2026-03-01 [\d:]{8}–[\d:]{8})</td>", cluster)
    assert members and all(camera == label for _, camera, label, _ in members)
    evaluation = (site / "round_001" / "eval.html").read_text(encoding="utf-8")
    assert "<div>query 0 · p6-gate · id 6 · cam gate · 2026-03-01 14:04:00–14:04:01 · AP " in evaluation
    assert re.search(r'<span class="name">p6-(lobby|street)</span>cam (lobby|street)<br>', evaluation)
    for page in sorted(site.rglob("*.html")):
        shown = re.sub(r"<[^>]*>", " ", page.read_text(encoding="utf-8"))  # the text people read, no attributes
        assert not re.search(r"17723\d{5}", shown), page  # no epoch number in sight
        assert not re.search(r"\bcam \d\b|\bc\d\b", shown), page  # no camera by its index


@pytest.mark.slow
def test_make_round_as_written_trains_the_own_cameras(tmp_path):
    """The page's `make round`, with the tiny settings (EXTRA_SET) and one round (N=1 EVERY=1) added."""
    home = checkout_like(tmp_path, "Makefile", ".venv", "pyproject.toml", "constraints.txt")
    [make] = [words for words in doc_commands() if words[0] == "make"]
    result = subprocess.run([*make, "--no-print-directory", "N=1", "EVERY=1", f"EXTRA_SET={shlex.join(tiny_set_args())}"],
                            cwd=home, env=make_env(home / "artifacts"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    run = home / "artifacts" / RUN
    assert (run / "round_001" / "model.pt").is_file() and (run / "round_001" / "eval.json").is_file()
    assert (run / "round_000" / "eval.json").is_file()
    assert read_artifact(run / "round_001" / "clusters.h5")["camera_labels"].tolist() == list(CAMERAS)
    assert read_artifact(run / "round_001" / "features.h5")["train/num_frames"].tolist() == [FRAMES] * 18
