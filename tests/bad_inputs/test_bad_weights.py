"""Bad weight files and friendly names: every .pt loader refuses garbage in one line naming the file.

Each case checks exit code 1, a single `error:` line naming the file or option, no traceback, and that
nothing was written (or the previous output is byte-identical).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.rundir import RunDir

runner = CliRunner()


def _one_line_error(result, *fragments: str) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


class _Mkdir:
    """A pickle payload that would create a folder if it were ever unpickled with code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def _garbage(tmp_path: Path, kind: str) -> Path:
    """A file that is not a loadable torch weight file, of the given kind."""
    path = tmp_path / f"{kind}.pt"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zip-without-data":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/version", "3\n")
    else:
        raise ValueError(kind)
    return path


GARBAGE = ["text", "empty", "truncated", "zip-without-data"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_init_with_garbage_pretrained_weights(tmp_path, tiny_synth, kind):
    bad = _garbage(tmp_path, kind)
    result = runner.invoke(app, ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}",
                                 "--set", f"model.pretrained={bad}"])
    line = _one_line_error(result, f"model.pretrained: {bad} is not a readable torch file")
    assert line.endswith("it is damaged, truncated or in another format; re-create or re-download it")
    assert not RunDir.resolve("exp").path.exists()


@pytest.mark.parametrize("kind", GARBAGE)
def test_import_weights_garbage_keeps_the_previous_output(tmp_path, kind):
    bad = _garbage(tmp_path, kind)
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous model")
    result = runner.invoke(app, ["import-weights", str(bad), "--out", str(out), "--arch", "resnet18"])
    _one_line_error(result, f"{bad} is not a readable torch file")
    assert out.read_bytes() == b"previous model"


def test_pickle_payload_is_refused_naming_the_forbidden_global(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": {"x": _Mkdir(marker)}}, tmp_path / "evil.pth.tar")
    result = runner.invoke(app, ["import-weights", str(tmp_path / "evil.pth.tar"), "--out", str(tmp_path / "m.pt")])
    line = _one_line_error(result, f"{tmp_path / 'evil.pth.tar'} cannot be loaded with weights_only=True "
                                   "(it pickles the object posix.mkdir)")
    assert line.endswith("re-save the weights as a plain state dict")
    assert not marker.exists() and not (tmp_path / "m.pt").exists()


def test_pickled_class_is_refused_naming_it(tmp_path, tiny_synth):
    import datetime

    torch.save({"conv1.weight": torch.zeros(1), "when": datetime.date(2022, 5, 6)}, tmp_path / "dated.pt")
    result = runner.invoke(app, ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}",
                                 "--set", f"model.pretrained={tmp_path / 'dated.pt'}"])
    _one_line_error(result, "model.pretrained: ", "(it pickles the object datetime.date)")


def test_checkpoint_whose_state_dict_is_a_string(tmp_path):
    torch.save({"state_dict": "base.0.weight", "epoch": 3}, tmp_path / "ref.pth")
    result = runner.invoke(app, ["import-weights", str(tmp_path / "ref.pth"), "--out", str(tmp_path / "m.pt")])
    _one_line_error(result, f"{tmp_path / 'ref.pth'} state_dict is a str, expected a state dict")


def test_model_pt_whose_teacher_is_a_string(tmp_path, tiny_synth):
    torch.save({"format": "auxreid-model", "teacher": "conv1.weight"}, tmp_path / "model.pt")
    result = runner.invoke(app, ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}",
                                 "--set", f"model.pretrained={tmp_path / 'model.pt'}"])
    _one_line_error(result, f"{tmp_path / 'model.pt'} is an auxreid model.pt whose 'teacher' is a str")


def test_extract_with_a_truncated_model(tmp_path, tiny_synth):
    bad = _garbage(tmp_path, "truncated")
    result = runner.invoke(app, ["extract", "--model", str(bad), "--out", str(tmp_path / "f.h5"), "--config", "synth",
                                 "--set", f"data.root={tiny_synth}"])
    _one_line_error(result, f"{bad} is not a readable torch file (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.pt"]


def test_pretrained_folder_or_missing_file(tmp_path, tiny_synth):
    args = ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}"]
    folder = runner.invoke(app, [*args, "--set", f"model.pretrained={tmp_path}"])
    _one_line_error(folder, f"model.pretrained: weight file {tmp_path} is a folder; give a weight file's path, "
                            "imagenet or none")
    missing = runner.invoke(app, [*args, "--set", f"model.pretrained={tmp_path / 'nope.pt'}"])
    _one_line_error(missing, f"model.pretrained: weight file {tmp_path / 'nope.pt'} does not exist")


@pytest.mark.parametrize("value", ["ImageNet", "IMAGENET"])
def test_pretrained_keyword_in_any_case(tmp_path, tiny_synth, monkeypatch, value):
    """ImageNet is the keyword, not a file: with no weights in the (empty) torch cache, that is what it says."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    result = runner.invoke(app, ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}",
                                 "--set", "model.arch=resnet18", "--set", f"model.pretrained={value}"])
    _one_line_error(result, "model.pretrained=imagenet needs torchvision's resnet18 ImageNet weights, but "
                            f"resnet18-f37072fd.pth is not in {tmp_path / 'torch' / 'hub' / 'checkpoints'}")


def test_pretrained_none_in_any_case_and_a_misspelt_keyword(tiny_synth):
    args = ["init", "exp", "--config", "synth", "--set", f"data.root={tiny_synth}"]
    assert runner.invoke(app, [*args, "--set", "model.pretrained=None"]).exit_code == 0
    typo = runner.invoke(app, [*args, "--force", "--set", "model.pretrained=imagenett"])
    _one_line_error(typo, "model.pretrained: weight file imagenett does not exist; did you mean "
                          "model.pretrained=imagenet?")


@pytest.mark.parametrize("name", ["synth", "synth.yaml"])
def test_shipped_config_by_name_from_another_directory(tmp_path, tiny_synth, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "exp", "--config", name, "--set", f"data.root={tiny_synth}",
                                 "--set", "model.pretrained=none"])
    assert result.exit_code == 0, result.output
    assert "dataset: synth" in RunDir.resolve("exp").config_path.read_text()


@pytest.mark.parametrize(("name", "hint"), [("nope", ""), ("Synth", "; did you mean --config synth?")])
def test_unknown_config_name_lists_the_shipped_ones(tmp_path, monkeypatch, name, hint):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "exp", "--config", name])
    line = _one_line_error(result)
    assert line == (f"error: config file {name} does not exist; give a YAML file or a shipped config "
                    f"(duke-plus, duke, manifest, mars-plus, mars, synth){hint}")
