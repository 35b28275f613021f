"""What a new user meets first: start-up cost, --version, dataset homes, default outputs, paths from another
directory, progress lines and the run log under a scheduler, allowed values in --help, benchmarks' --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxreid_cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """Every command, even --help, imports auxreid_cli.main: it must not pay for torch or the numeric stacks."""
    heavy = ("torch", "torchvision", "numba", "faiss", "sklearn", "scipy", "h5py", "matplotlib", "PIL")
    code = f"import sys, auxreid_cli.main; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_model_code_does_not_import_torchvision() -> None:
    """torchvision's package import pulls in torch._dynamo (seconds per process); the network is built without it."""
    code = ("import sys; from stages.model.network import build_model; from stages.model.pretrained import initial_model; "
            "from stages.model.checkpoint import read_model_file; print('torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"auxreid {version('auxreid')}\n")


# ------------------------------------------------------------------------------------------ dataset home


def _home_error(dataset: str, folder: str, home: str, layout: str) -> str:
    return (f"error: no {dataset} dataset at {home}/{folder} (the default: {folder}/ under AUXREID_DATA={home}); it "
            f"should hold {layout}; put it there, or point elsewhere with AUXREID_DATA=DIR (the folder holding "
            f"{folder}/) or --root DIR (in a config: data.root)")


def test_datasets_live_in_their_home_under_auxreid_data(tmp_path, monkeypatch) -> None:
    """DukeMTMC-VideoReID and MARS in their real layouts are found under $AUXREID_DATA without --root."""
    from stages.config import DataConfig
    from stages.data import load_dataset
    from test_cli_datasets import _tracklet
    from test_datasets import _mars_tree

    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("AUXREID_DATA", str(home))
    runner = CliRunner()
    missing = runner.invoke(app, ["datasets", "show", "--dataset", "duke"])
    assert (missing.exit_code, missing.output.strip()) == (1, _home_error(
        "duke", "DukeMTMC-VideoReID", str(home), "train/, query/ and gallery/, each <pid>/<tracklet>/<frames>.jpg"))

    duke = home / "DukeMTMC-VideoReID"
    for split, names in (("train", ["0001C1F0001X00001.jpg"]), ("query", ["0001C3F0001X00001.jpg"]),
                         ("gallery", ["0001C4F0001X00001.jpg"])):
        _tracklet(duke, split, "0001", "0001", names)
    _mars_tree(home / "MARS")
    shown = {name: runner.invoke(app, ["datasets", "show", "--dataset", name]) for name in ("duke", "mars")}
    assert all(result.exit_code == 0 for result in shown.values()), {k: v.output for k, v in shown.items()}
    for name, folder in (("duke", duke), ("mars", home / "MARS")):
        expected = load_dataset(DataConfig(dataset=name, root=str(folder), dense_step=0)).fingerprint
        assert f"fingerprint: {expected};" in shown[name].output

    monkeypatch.delenv("AUXREID_DATA")  # the default home is ./data
    default = runner.invoke(app, ["mine-aux", "--dataset", "mars"])
    assert default.exit_code == 1
    assert default.output.strip().splitlines()[-1] == (
        "error: no mars dataset at data/MARS (the default: MARS/ under ./data, as AUXREID_DATA is unset); it should "
        "hold bbox_train/, bbox_test/ and info/ (the MARS release); put it there, or point elsewhere with "
        "AUXREID_DATA=DIR (the folder holding MARS/) or --root DIR (in a config: data.root)")
    rooted = runner.invoke(app, ["datasets", "show", "--dataset", "duke", "--root", str(duke)])
    assert rooted.exit_code == 0, rooted.output


def test_standalone_mine_aux_defaults_out_and_reads_synth_as_its_config_does(tmp_path, monkeypatch, tiny_synth) -> None:
    """`mine-aux --dataset synth` alone: the data from its home, aux.h5 under the artifacts root, and the synth
    dataset's own settings (dense_step 0), so its fingerprint is the one a run of configs/synth.yaml records."""
    from stages.artifacts.h5 import read_provenance
    from stages.config import load_config
    from stages.data import load_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synth").symlink_to(tiny_synth)
    monkeypatch.delenv("AUXREID_DATA", raising=False)
    result = CliRunner().invoke(app, ["mine-aux", "--dataset", "synth"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "artifacts" / "synth" / "aux.h5"
    run_config = load_config(ROOT / "configs" / "synth.yaml", [f"data.root={tiny_synth}"])
    assert run_config.data.dense_step == 0
    assert read_provenance(written)[0].fingerprint == load_dataset(run_config.data).fingerprint
    assert load_config(None, ["data.dataset=synth", "data.dense_step=8"]).data.dense_step == 8  # a given key wins
    assert load_config(None, ["data.dataset=duke"]).data.dense_step == 40

    auc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sts_auc.py"), str(written), str(written)],
                         cwd=ROOT, capture_output=True, text=True)
    assert (auc.returncode, auc.stderr) == (1, f"error: {written} is a 'aux' artifact but a 'features' artifact is "
                                               "needed here\n")


TINY_RUN = """seed: 0
data: {dataset: synth, num_workers: 0}
model: {arch: resnet18, pretrained: none}
extract: {cluster_seq_len: 2, cluster_batch: 8, device: cpu, amp: "off", channels_last: false}
"""


def test_a_run_made_in_one_directory_works_from_another(tmp_path, monkeypatch, tiny_synth) -> None:
    """init freezes data.root absolute (the relative default home filled in), so extract runs from anywhere."""
    import yaml

    first, second = tmp_path / "first", tmp_path / "second"
    (first / "data").mkdir(parents=True)
    second.mkdir()
    (first / "data" / "synth").symlink_to(tiny_synth)
    (first / "tiny.yaml").write_text(TINY_RUN)
    monkeypatch.delenv("AUXREID_DATA", raising=False)
    monkeypatch.chdir(first)
    runner = CliRunner()
    made = runner.invoke(app, ["init", "moved", "--config", "tiny.yaml"])
    assert made.exit_code == 0, made.output
    frozen = yaml.safe_load((tmp_path / "artifacts" / "moved" / "config.yaml").read_text())
    assert frozen["data"]["root"] == str(first / "data" / "synth")
    monkeypatch.chdir(second)
    extracted = runner.invoke(app, ["extract", "moved", "--round", "1"])
    assert extracted.exit_code == 0, extracted.output
    assert (tmp_path / "artifacts" / "moved" / "round_001" / "features.h5").is_file()
