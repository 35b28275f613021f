"""`auxreid datasets show`: exit code, the statistics table, and the error line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from auxreid_cli.main import app


def _tracklet(root: Path, split: str, pid: str, track: str, names: list[str]) -> None:
    folder = root / split / pid / track
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).touch()


def test_datasets_show_prints_table_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "duke"
    _tracklet(root, "train", "0001", "0001", [f"0001C1F{k:04d}X{k:05d}.jpg" for k in range(1, 6)])
    _tracklet(root, "train", "0002", "0001", ["0002_C2_F0001_X00010.jpg"])
    _tracklet(root, "query", "0001", "0002", ["0001C3F0001X00001.jpg"])
    _tracklet(root, "gallery", "0001", "0003", ["0001C4F0001X00001.jpg", "0001C4F0002X00013.jpg"])
    runner = CliRunner()

    shown = runner.invoke(app, ["datasets", "show", "--dataset", "duke", "--root", str(root), "--dense-step", "2"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    train = next(line for line in lines if line.startswith("│ train"))
    assert [cell.strip() for cell in train.split("│")[1:-1]] == ["train", "2", "3", "6", "2", "1", "2.0", "3", "60-93"]
    assert "timestamps: known, 59.94 fps; cameras: 8" in shown.output

    missing = runner.invoke(app, ["datasets", "show", "--dataset", "duke", "--root", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert missing.output.strip() == f"error: folder {tmp_path / 'nope'} is missing; it should hold train/, query/, gallery/"

    no_manifest = runner.invoke(app, ["datasets", "show", "--dataset", "manifest"])
    assert (no_manifest.exit_code, no_manifest.output.strip()) == (
        1, "error: --dataset manifest needs --manifest FILE (.csv or .jsonl)")
    stray = runner.invoke(app, ["datasets", "show", "--dataset", "duke", "--root", str(root), "--manifest", "m.csv"])
    assert (stray.exit_code, stray.output.strip()) == (
        1, "error: --manifest goes with --dataset manifest, not --dataset duke; give --dataset manifest, or drop "
           "--manifest")
    assert "camera labels (index order): C1, C2, C3, C4, C5, C6, C7, C8" in shown.output.splitlines()
