"""More hostile inputs: config values that cannot train, number spellings YAML 1.1 reads as text, a lock file that
is no file, and paths read as files that are folders, symlink loops, FIFOs or devices.

Each refusal is one line naming the key or file, what it is, and what to do; nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import read_artifact, read_provenance
from stages.artifacts.lock import LOCK_NAME, claim_outputs
from stages.artifacts.model_file import read_model_file
from stages.artifacts.weights_file import load_weights_only
from stages.config import config_hash, config_to_yaml, load_config, read_yaml, shipped_configs
from stages.errors import AuxReidError

runner = CliRunner()


def _one_line_error(result) -> str:
    """The single `error:` line of a refused command (exit 1, no traceback), without its prefix."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


def _refused(assignments: list[str], path: Path | None = None) -> str:
    with pytest.raises(AuxReidError) as info:
        load_config(path, assignments)
    return str(info.value)


# --- class 1a: a batch of one identity --------------------------------------------------------------------------

ONE_IDENTITY = ("'train.batch_size' = {b} is less than 2 x 'train.instances' = {k}: a batch then holds one identity, "
                "so the triplet losses have no negatives and stay 0 all round; make batch_size at least 2 x instances")


def test_batch_of_one_identity_is_refused_naming_the_source(tmp_path):
    assert _refused(["train.batch_size=4"]) == "--set: " + ONE_IDENTITY.format(b=4, k=4)
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 8\n  instances: 8\n")
    assert _refused([], path) == f"{path}: " + ONE_IDENTITY.format(b=8, k=8)
    # two identities is the least a batch may hold; a later layer may repair what an earlier one set
    assert load_config(None, ["train.batch_size=8"]).train.batch_size == 8
    assert load_config(path, ["train.instances=4"]).train.instances == 4


def test_init_with_a_batch_of_one_identity_writes_nothing(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "r"), "--config", "synth", "--set", "train.batch_size=4",
                                 "--set", "train.instances=4"])
    assert _one_line_error(result) == "--set: " + ONE_IDENTITY.format(b=4, k=4)
    assert list(tmp_path.iterdir()) == []


# --- class 1b: iterations a round cannot hold -------------------------------------------------------------------

MULTIPLIER = "is out of range; it must be <= 100 (<= 0 trains fixed_iters)"
FIXED = "is out of range; it must be in [1, 100000]"


def test_iterations_are_bounded_where_they_are_set(tmp_path):
    assert _refused(["train.iters_multiplier=1e300"]) == f"--set: 'train.iters_multiplier' = 1e+300 {MULTIPLIER}"
    assert _refused(["train.iters_multiplier=1e9"]) == f"--set: 'train.iters_multiplier' = 1000000000.0 {MULTIPLIER}"
    assert _refused(["train.fixed_iters=1000000000"]) == f"--set: 'train.fixed_iters' = 1000000000 {FIXED}"
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  iters_multiplier: 1.0e+300\n")  # a float to YAML 1.1 too
    assert _refused([], path) == f"{path}: 'train.iters_multiplier' = 1e+300 {MULTIPLIER}"
    edges = load_config(None, ["train.iters_multiplier=100", "train.fixed_iters=100000"]).train
    assert (edges.iters_multiplier, edges.fixed_iters) == (100.0, 100_000)
    assert load_config(None, ["train.iters_multiplier=-1e300"]).train.iters_multiplier == -1e300  # fixed_iters
    from stages.config import MAX_ITERS_MULTIPLIER, MAX_ROUND_ITERATIONS  # what the round plan caps with

    assert (MAX_ITERS_MULTIPLIER, MAX_ROUND_ITERATIONS) == (100, 100_000)


def test_init_with_a_huge_multiplier_is_one_line(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "r"), "--config", "synth", "--set",
                                 "train.iters_multiplier=1e300"])
    assert _one_line_error(result) == f"--set: 'train.iters_multiplier' = 1e+300 {MULTIPLIER}"
    assert list(tmp_path.iterdir()) == []


# --- class 1c: numbers in every spelling ------------------------------------------------------------------------

#: (key, as typed, value): float keys take any number, int keys any integral one.
SPELLINGS = [
    ("train.lr", "1e-4", 1e-4), ("train.lr", "1E-4", 1e-4), ("train.lr", "1.0e-4", 1e-4), ("train.lr", "1.e-4", 1e-4),
    ("train.lr", ".5", 0.5), ("train.lr", "5.", 5.0), ("train.lr", "1_000.5", 1000.5), ("train.lr", "1e1_0", 1e10),
    ("evaluate.toc_penalty", "1e6", 1e6), ("evaluate.toc_penalty", "1.0e9", 1e9), ("evaluate.toc_penalty", "1_000", 1e3),
    ("train.watl_lambda", "-.5", -0.5), ("train.watl_lambda", "+.5", 0.5), ("train.watl_lambda", "-1e-2", -0.01),
    ("cluster.relaxed", "-1e-2", -0.01), ("train.iters_multiplier", "6e-1", 0.6),
    ("train.fixed_iters", "1e3", 1000), ("train.fixed_iters", "2.5e2", 250), ("train.fixed_iters", "1_000", 1000),
    ("train.fixed_iters", "1000.0", 1000), ("data.height", "2.56E+2", 256), ("seed", "4e9", 4_000_000_000),
]


def _yaml_layer(tmp_path: Path, key: str, text: str) -> Path:
    section, name = key.split(".") if "." in key else ("", key)
    path = tmp_path / f"{key}.yaml"
    path.write_text(f"{section}:\n  {name}: {text}\n" if section else f"{name}: {text}\n")
    return path


def _get(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def test_every_number_spelling_is_read_in_yaml_files_and_set(tmp_path):
    for key, text, value in SPELLINGS:
        from_set = _get(load_config(None, [f"{key}={text}"]), key)
        from_file = _get(load_config(_yaml_layer(tmp_path, key, text)), key)
        for got in (from_set, from_file):
            assert got == value and type(got) is type(value), (key, text, got)
    config = load_config(None, ["train.lr=1e-4", "train.fixed_iters=1e3", "cluster.relaxed=-1e-2"])
    frozen = tmp_path / "frozen.yaml"
    frozen.write_text(config_to_yaml(config))
    assert load_config(frozen) == config and config_hash(load_config(frozen)) == config_hash(config)
    # what is no number, or no integer for an int key, is still refused as such; text keys keep the text
    for text in ("1e", "e5", "_1", "1.2.3", "0x1p3", "inf", "nan", "1e5x", ". 5", "--1"):
        assert _refused([f"train.lr={text}"]) == (f"--set: 'train.lr' must be float, got '{text}'; fix the value in "
                                                  "the YAML file or --set"), text
    for text, shown in (("2.5", "2.5"), ("1e-1", "'1e-1'"), ("2.5e0", "'2.5e0'"), (".nan", "nan"), (".inf", "inf")):
        assert _refused([f"train.fixed_iters={text}"]) == (
            f"--set: 'train.fixed_iters' must be int, got {shown}; fix the value in the YAML file or --set"), text
    assert load_config(None, ["data.root=1e6"]).data.root == "1e6"  # text keys keep the text


def test_numbers_too_large_for_their_type_say_so(tmp_path):
    assert _refused(["train.lr=1e400"]) == ("--set: 'train.lr' = 1e400 is too large for a float; fix the value in the "
                                            "YAML file or --set")
    assert _refused(["train.fixed_iters=1e500"]) == ("--set: 'train.fixed_iters' = 1e500 is too large for an int; fix "
                                                     "the value in the YAML file or --set")
    assert _refused(["train.fixed_iters=1e30"]) == f"--set: 'train.fixed_iters' = {10**30} {FIXED}"
    assert _refused(["seed=4.3e9"]) == "--set: 'seed' = 4300000000 is out of range; it must be in [0, 2**32 - 1]"


# --- class 2: a lock file that is no file -----------------------------------------------------------------------


def _lock_refusal(folder: Path) -> str:
    lock = Path(os.path.realpath(folder)) / LOCK_NAME
    return (f"cannot write {folder / 'out.h5'}: its lock file {lock} {{}}; remove it (auxreid makes it again as a "
            "plain file) and run again")


@pytest.mark.timeout(30)
def test_a_lock_that_is_a_folder_fifo_or_dangling_link_is_refused_unopened(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / LOCK_NAME
    cases = [(lock.mkdir, "is a folder"), (lambda: os.mkfifo(lock), "is not a regular file (a FIFO)"),
             (lambda: lock.symlink_to("elsewhere"), "is a broken symlink (to elsewhere)"),
             (lambda: lock.symlink_to(LOCK_NAME), "is a symlink loop")]
    for make, words in cases:
        make()
        with pytest.raises(AuxReidError) as info:
            with claim_outputs([folder / "out.h5"]):
                pytest.fail("claimed")
        assert str(info.value) == _lock_refusal(folder).format(words), words
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # the link's target was not created
        if lock.is_dir() and not lock.is_symlink():
            lock.rmdir()
        else:
            lock.unlink()
    with claim_outputs([folder / "out.h5"]):
        assert lock.is_file()


def test_report_with_a_lock_folder_is_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "round_000").mkdir(parents=True)
    (run / LOCK_NAME).mkdir()
    result = runner.invoke(app, ["report", str(run)])
    lock = Path(os.path.realpath(run)) / LOCK_NAME
    assert _one_line_error(result) == (f"cannot write {run / 'report.png'}: its lock file {lock} is a folder; remove it "
                                       "(auxreid makes it again as a plain file) and run again")


# --- class 3: paths read as files that are none -----------------------------------------------------------------


def _odd_paths(tmp_path: Path) -> list[tuple[Path, str]]:
    """(path, what the messages say it is): each is no regular file, and reading a FIFO would block."""
    folder = tmp_path / "folder.x"
    folder.mkdir()
    loop = tmp_path / "loop.x"
    loop.symlink_to(loop.name)
    fifo = tmp_path / "fifo.x"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling.x"
    dangling.symlink_to("gone.x")
    return [(folder, "is a folder"), (loop, "is a symlink loop"), (fifo, "is not a regular file (a FIFO)"),
            (Path("/dev/zero"), "is not a regular file (a character device)"),
            (dangling, "is a broken symlink (to gone.x)"), (tmp_path / "none.x", "does not exist")]


def _advice(words: str, *, missing: str, folder: str) -> str:
    if words == "does not exist":
        return missing
    if words == "is a folder":
        return folder
    if "regular file" in words:
        return "give the path of a regular file"
    return "point the link at a file, or remove it"


@pytest.mark.timeout(60)
def test_file_problem_words_each_kind_without_opening_it(tmp_path):
    from stages.config import file_problem

    for path, words in _odd_paths(tmp_path):
        assert file_problem(path).words == words
    regular = tmp_path / "regular.x"
    regular.write_text("seed: 7\n")
    (tmp_path / "link.x").symlink_to(regular.name)
    assert file_problem(regular) is None and file_problem(tmp_path / "link.x") is None
    assert load_config(tmp_path / "link.x").seed == 7  # a regular file behind a link is read as ever
    torch.save({"w": torch.zeros(2)}, regular)
    assert torch.equal(load_weights_only(tmp_path / "link.x")["w"], torch.zeros(2))


@pytest.mark.timeout(60)
def test_artifact_readers_word_each_kind(tmp_path):
    for path, words in _odd_paths(tmp_path):
        advice = _advice(words, missing="run the stage that writes it first", folder="give the .h5 file inside it")
        for read in (read_provenance, read_artifact):
            with pytest.raises(AuxReidError) as info:
                read(path)
            assert str(info.value) == f"artifact {path} {words}; {advice}", read


@pytest.mark.timeout(60)
def test_weight_and_model_readers_word_each_kind(tmp_path):
    for path, words in _odd_paths(tmp_path):
        advice = _advice(words, missing="check the path", folder="give the weight file inside it")
        for read in (load_weights_only, read_model_file):
            with pytest.raises(AuxReidError) as info:
                read(path)
            assert str(info.value) == f"model file {path} {words}; {advice}", read


@pytest.mark.timeout(60)
def test_config_reader_words_each_kind(tmp_path):
    shipped = f"give a YAML file or a shipped config ({', '.join(shipped_configs())})"
    for path, words in _odd_paths(tmp_path):
        advice = _advice(words, missing=shipped, folder=shipped)
        for read in (read_yaml, load_config):
            with pytest.raises(AuxReidError) as info:
                read(path)
            assert str(info.value) == f"config file {path} {words}; {advice}", read


@pytest.mark.timeout(60)
def test_cli_reads_no_fifo_as_config_or_weights(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["init", str(tmp_path / "r"), "--config", str(fifo)])
    shipped = f"give a YAML file or a shipped config ({', '.join(shipped_configs())})"
    assert _one_line_error(result) == f"config file {fifo} is not a regular file (a FIFO); give the path of a regular file"
    assert shipped not in result.output
    result = runner.invoke(app, ["import-weights", "/dev/zero", "--arch", "resnet18", "--out", str(tmp_path / "m.pt")])
    assert _one_line_error(result) == ("model file /dev/zero is not a regular file (a character device); give the path "
                                       "of a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.yaml"]

