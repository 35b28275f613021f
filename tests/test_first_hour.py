"""What a new user meets first: start-up cost, --version, dataset homes, default outputs, paths from another
directory, progress lines and the run log under a scheduler, allowed values in --help, benchmarks' --help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auxreid_cli.common import RichProgress
from auxreid_cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    """Every command, even --help, imports auxreid_cli.main: it must not pay for torch or the numeric stacks."""
    heavy = ("torch", "torchvision", "numba", "faiss", "sklearn", "scipy", "h5py", "matplotlib", "PIL")
    code = f"import sys, auxreid_cli.main; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_summaries_import_neither_torch_nor_sklearn() -> None:
    """`inspect`, and every stage's closing summary, print through stages.views.summaries: seconds saved per call."""
    code = "import sys, stages.views.summaries; print(' '.join(m for m in ('torch', 'sklearn') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_model_code_does_not_import_torchvision() -> None:
    """torchvision's package import pulls in torch._dynamo (seconds per process); the network is built without it."""
    code = ("import sys; from stages.model.network import build_model; from stages.model.pretrained import initial_model; "
            "from stages.artifacts.model_file import read_model_file; print('torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_first_numba_compile_is_announced(tmp_path) -> None:
    """With an empty cache the kernels compile for ~15 s at first use: one status line says so (import only here)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "import stages.clustering.kernels as k; print(len(k._uncached()))"
    cold = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(cold.stdout) > 0
    assert re.fullmatch(rf"compiling the clustering kernels with numba, once \(~15 s; cached in {tmp_path}/\S+\)\n",
                        cold.stderr), cold.stderr


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
    from helpers_data import mars_tree as _mars_tree
    from stages.config import DataConfig
    from stages.data import load_dataset
    from test_cli_datasets import _tracklet

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
    dataset's own settings (dense_step 8), so its fingerprint is the one a run of configs/synth.yaml records."""
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
    assert run_config.data.dense_step == 8
    assert read_provenance(written)[0].fingerprint == load_dataset(run_config.data).fingerprint
    assert load_config(None, ["data.dataset=synth", "data.dense_step=4"]).data.dense_step == 4  # a given key wins
    assert load_config(None, ["data.dataset=duke"]).data.dense_step == 40

    auc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sts_auc.py"), str(written), str(written)],
                         cwd=ROOT, capture_output=True, text=True)
    assert (auc.returncode, auc.stderr) == (1, f"error: {written} is a 'aux' artifact but a 'features' artifact is "
                                               "needed here\n")


TINY_RUN = """seed: 0
data: {dataset: synth, height: 32, width: 16, num_workers: 0}
model: {arch: resnet18, pretrained: none}
extract: {cluster_seq_len: 2, cluster_batch: 8, device: cpu, amp: "off", channels_last: false}
"""


def test_a_run_made_in_one_directory_works_from_another(tmp_path, monkeypatch, tiny_synth) -> None:
    """init freezes data.root absolute (the relative default home filled in), so extract runs from anywhere;
    every command given the run is recorded in RUN/log.txt."""
    import yaml

    def invoke(*args: str):
        monkeypatch.setattr(sys, "argv", ["auxreid", *args])
        return runner.invoke(app, list(args))

    first, second = tmp_path / "first", tmp_path / "second"
    (first / "data").mkdir(parents=True)
    second.mkdir()
    (first / "data" / "synth").symlink_to(tiny_synth)
    (first / "tiny.yaml").write_text(TINY_RUN)
    monkeypatch.delenv("AUXREID_DATA", raising=False)
    monkeypatch.chdir(first)
    runner = CliRunner()
    made = invoke("init", "moved", "--config", "tiny.yaml")
    assert made.exit_code == 0, made.output
    run = tmp_path / "artifacts" / "moved"
    frozen = yaml.safe_load((run / "config.yaml").read_text())
    assert frozen["data"]["root"] == str(first / "data" / "synth")
    monkeypatch.chdir(second)
    extracted = invoke("extract", "moved", "--round", "1")
    assert extracted.exit_code == 0, extracted.output
    assert (run / "round_001" / "features.h5").is_file()
    assert invoke("cluster", "moved", "--round", "2").exit_code == 1

    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d  "
    lines = (run / "log.txt").read_text().splitlines()
    expected = [r"exit 0  [\d.]+ s  auxreid init moved --config tiny.yaml",  # the folder did not exist at the start
                r"start   auxreid extract moved --round 1", r"exit 0  [\d.]+ s  auxreid extract moved --round 1",
                r"start   auxreid cluster moved --round 2",
                rf"exit 1  [\d.]+ s  auxreid cluster moved --round 2  \(error: {run}/round_002/features.h5 does not "
                r"exist; run `auxreid extract moved --round 2` first\)"]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected):
        assert re.fullmatch(stamp + pattern, line), line


# ------------------------------------------------------------------------------------------ logs and progress


def test_progress_without_a_terminal_prints_plain_lines_with_rate_and_eta(monkeypatch, capsys) -> None:
    monkeypatch.setenv("AUXREID_PROGRESS_EVERY", "0.05")
    with RichProgress() as progress:
        progress.start("extract train", total=40)
        progress.advance("extract train", 10)
        progress.rate("extract train", "12 frames/s")
        time.sleep(0.3)
        progress.done("extract train", "40 tracklets")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "extract train: started, 40 to do"
    assert lines[-1] == "extract train: done in 0:00; 40 tracklets"
    assert len(lines) >= 4  # a line every 0.05 s in between
    for line in lines[1:-1]:
        assert re.fullmatch(r"extract train: 10/40 \(25%\), 0:00 elapsed, ETA 0:0\d; 12 frames/s", line), line

    with RichProgress() as progress:  # without the stage's own rate text, the line gives items per second
        progress.start("cluster", total=None)
        progress.advance("cluster", 3)
        time.sleep(0.2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "cluster: started" and len(lines) >= 2
    assert all(re.fullmatch(r"cluster: 3, 0:00 elapsed, [\d.]+/s", line) for line in lines[1:]), lines


def test_progress_interval_and_clock(monkeypatch) -> None:
    from auxreid_cli.common import clock, progress_every
    from stages.errors import AuxReidError

    assert (clock(65), clock(3725), clock(0.4)) == ("1:05", "1:02:05", "0:00")
    monkeypatch.delenv("AUXREID_PROGRESS_EVERY", raising=False)
    assert progress_every() == 30
    for bad in ("soon", "0", "-5", "inf"):
        monkeypatch.setenv("AUXREID_PROGRESS_EVERY", bad)
        with pytest.raises(AuxReidError) as error:
            progress_every()
        assert str(error.value) == (f"AUXREID_PROGRESS_EVERY={bad} is not a number of seconds > 0; unset it (every "
                                    "30 s) or give e.g. AUXREID_PROGRESS_EVERY=60")


def test_tables_are_not_cut_at_80_columns_without_a_terminal(monkeypatch) -> None:
    from auxreid_cli.common import LOG_WIDTH, _console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert _console().width == LOG_WIDTH  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert _console().width == 100


# ------------------------------------------------------------------------------------------------ help


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_allowed_values_and_shows_flags_bare() -> None:
    shown = {
        ("mine-aux",): ["<synth|duke|mars|manifest>", "<appearance|clusters|oracle>"],
        ("synth",): ["<duke|mars>"],
        ("extract",): ["<cluster|infer>", "train|query|gallery", "auto|cpu|cuda|cuda:N"],
        ("import-weights",): ["<resnet50|resnet34|resnet18>"],
        ("datasets", "show"): ["<synth|duke|mars|manifest>"],
        ("init",): ["model.arch: resnet50|resnet34|resnet18", "aux.sts_source: appearance|clusters|oracle",
                    "train.device: auto|cpu|cuda|cuda:N", "--set  KEY=VALUE"],
    }
    for command, needles in shown.items():
        text = " ".join(_help(*command).split())
        for needle in needles:
            assert " ".join(needle.split()) in text, (command, needle)
    import typer.main

    for name, command in typer.main.get_command(app).commands.items():
        for path in ([[name, sub] for sub in command.commands] if hasattr(command, "commands") else [[name]]):
            assert "<bool>" not in _help(*path), path
    flags = re.search(r"--force +Overwrite", _help("init"))
    assert flags is not None


@pytest.mark.parametrize("script", sorted(path.name for path in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_answers_help(script, monkeypatch, capsys) -> None:
    """Run as `python benchmarks/X.py --help` would, in this process (its imports are mostly loaded already)."""
    import runpy

    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {script} ")


def test_rounds_script_answers_help() -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "rounds.sh"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "  benchmarks/rounds.sh RUN N [--set key=value ...]" in done.stdout
