"""Bad values, foreign files and corrupt inputs: each is one `error:` line naming the file or key, exit 1.

Every case runs the CLI in-process on a small run (the tiny synthetic dataset, a resnet18 round-0
model from `auxreid init`, round 1's features, aux.h5 and clusters.h5), damages one input, and checks
the exit code, a single line naming the file or key, no traceback, and that every file the run held
before is byte-identical afterwards. Classes: 1 foreign dataset / round, 2 non-finite numbers,
5 corrupt or unexpected inputs, 6 config ranges, 10 a manifest with a BOM, 12 messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.schemas import FEATURES
from stages.config import build_config
from stages.data import load_dataset
from stages.rundir import RunDir

runner = CliRunner()

TINY = {
    "seed": 3,
    "data": {"dataset": "synth", "dense_step": 0, "height": 32, "width": 16, "num_workers": 0},
    "model": {"arch": "resnet18", "last_stride": 1, "pretrained": "none"},
    "extract": {"cluster_seq_len": 2, "cluster_batch": 8, "infer_chunk": 8, "device": "cpu", "amp": "off",
                "channels_last": False},
    "cluster": {"k1": 6, "k2": 3, "normalize": True, "eps_mode": "fixed", "eps": 0.5, "min_samples": 2,
                "toc": True, "rlsce_k": 3},
    "aux": {"sts_source": "oracle", "sts_min_pairs": 1},
    "train": {"batch_size": 8, "instances": 2, "train_seq_len": 2, "iters_multiplier": 0, "fixed_iters": 1,
              "device": "cpu", "amp": "off", "channels_last": False, "checkpoint_every": 0},
}


def _one_line_error(result, *fragments: str) -> str:
    """The single `error:` line of a refused command, checked to hold each fragment."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


#: The files a run's stages produce (logs and locks of the run itself are not artifacts).
ARTIFACT_SUFFIXES = (".h5", ".pt", ".yaml", ".json", ".jsonl", ".md", ".png", ".csv")


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name.endswith(ARTIFACT_SUFFIXES)}


def _refused(args: list[str], folder: Path, *fragments: str) -> str:
    """Run the CLI; it must refuse in one line and leave every file under `folder` as it was."""
    before = _hashes(folder)
    result = runner.invoke(app, args)
    line = _one_line_error(result, *fragments)
    after = _hashes(folder)
    assert {name: after.get(name) for name in before} == before, "a previous file was changed"
    new = [name for name in set(after) - set(before) if name.endswith((".h5", ".pt", ".json", ".md", ".png"))]
    assert not new, new
    return line


def _write_features(path: Path, dataset, *, round: int = 1, fingerprint: str | None = None, seed: int = 0) -> Path:
    """A cluster-mode features.h5 of the train split: features near one centre per person."""
    rng = np.random.default_rng(seed)
    arrays = dataset.arrays("train")
    ids = arrays["person_id"]
    centres = rng.normal(size=(int(ids.max()) + 1, 16))
    features = (centres[ids] + 0.05 * rng.normal(size=(ids.size, 16))).astype(np.float32)
    config = build_config((TINY, "test"))
    columns = {"features": features, "tracklet_index": np.arange(ids.size), "camera": arrays["camera"],
               "person_id": ids, "num_frames": arrays["num_frames"]}
    provenance = make_provenance(FEATURES, dataset=dataset.name, fingerprint=fingerprint or dataset.fingerprint,
                                 round=round, config=config)
    return write_artifact(path, provenance, {f"train/{k}": v for k, v in columns.items()},
                          attrs={"mode": "cluster", "bad_frames_skipped": 0, "seconds": 1.0})


@pytest.fixture(scope="module")
def template(module_tmp, tiny_synth):
    """A run with round 0's model, round 1's features, aux.h5 and clusters.h5 (made once per module)."""
    root = module_tmp.mktemp("bad_values")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "root": str(tiny_synth)}}))
    run = RunDir(root / "runs" / "exp")
    initialised = runner.invoke(app, ["init", str(run.path), "--config", str(config)])
    assert initialised.exit_code == 0, initialised.output
    dataset = load_dataset(build_config((yaml.safe_load(config.read_text()), "t")).data)
    _write_features(run.features(1), dataset)
    mined = runner.invoke(app, ["mine-aux", str(run.path)])
    assert mined.exit_code == 0, mined.output
    clustered = runner.invoke(app, ["cluster", str(run.path), "--round", "1"])
    assert clustered.exit_code == 0, clustered.output
    return run, dataset


@pytest.fixture
def run(template, tmp_path):
    """A private copy of the template run (round 0's model hard-linked: `_own` it before changing it)."""
    source, _ = template
    target = tmp_path / "artifacts" / "exp"
    shutil.copytree(source.path, target, copy_function=lambda s, d: os.link(s, d) if s.endswith(".pt") else shutil.copy2(s, d))
    return RunDir(target)


@pytest.fixture
def dataset(template):
    return template[1]


def _own(path: Path) -> Path:
    """Break a hard link so that the file can be changed without touching the template."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    return path


def _rewrite_model(path: Path, **changes) -> Path:
    """model.pt with some entries replaced (written as torch.save does, never through auxreid's checks)."""
    entries = torch.load(path, weights_only=True)
    entries.update(changes)
    path.unlink()
    torch.save(entries, path)
    return path


def _set_dataset(path: Path, name: str, value) -> None:
    with h5py.File(path, "r+") as handle:
        del handle[name]
        handle[name] = value


# --- class 1: a run's inputs must be of the run's dataset and of the round their place says ------------------


def test_foreign_features_without_aux_are_named_not_clustered(run, tmp_path, tiny_synth, dataset):
    foreign = _write_features(tmp_path / "foreign.h5", dataset, fingerprint="0123456789abcdef")
    shutil.copy(foreign, run.features(1))
    run.aux.unlink()
    _refused(["cluster", str(run.path), "--round", "1", "--set", "cluster.toc=false", "--set", "cluster.sts=false"],
             run.path, f"{run.features(1)} was made from dataset 'synth' with split fingerprint 0123456789abcdef",
             f"has fingerprint {dataset.fingerprint}", "auxreid extract")


def test_foreign_features_are_blamed_not_the_good_aux(run, tmp_path, dataset):
    shutil.copy(_write_features(tmp_path / "f.h5", dataset, fingerprint="feedfeedfeedfeed"), run.features(1))
    line = _refused(["cluster", str(run.path), "--round", "1"], run.path, str(run.features(1)))
    assert "aux.h5" not in line


def test_features_of_another_round_are_named(run, tmp_path, dataset):
    shutil.copy(_write_features(tmp_path / "f.h5", dataset, round=2), run.features(1))
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.features(1)} is from round 2, but cluster round 1 needs round 1's features.h5")


def test_foreign_aux_is_named(run, tmp_path, dataset):
    with h5py.File(run.aux, "r+") as handle:
        handle.attrs["fingerprint"] = "aaaaaaaaaaaaaaaa"
    _refused(["cluster", str(run.path), "--round", "1"], run.path, f"{run.aux} was made from dataset",
             "auxreid mine-aux")


def test_foreign_clusters_are_named_by_train_round(run):
    with h5py.File(run.clusters(1), "r+") as handle:
        handle.attrs["fingerprint"] = "bbbbbbbbbbbbbbbb"
    _refused(["train-round", str(run.path), "--round", "1"], run.path, f"{run.clusters(1)} was made from dataset")


def test_foreign_model_is_named_by_extract(run):
    _rewrite_model(run.model(0), fingerprint="cccccccccccccccc")
    _refused(["extract", str(run.path), "--round", "1"], run.path,
             f"{run.model(0)} was made from dataset 'synth' with split fingerprint cccccccccccccccc")


def test_foreign_features_are_named_by_mine_aux(run, tmp_path, dataset):
    shutil.copy(_write_features(tmp_path / "f.h5", dataset, fingerprint="dddddddddddddddd"), run.features(1))
    _refused(["mine-aux", str(run.path), "--set", "aux.sts_source=appearance"], run.path, str(run.features(1)))


# --- class 2: non-finite numbers are refused where they enter ------------------------------------------------


def test_nan_span_in_aux_is_refused(run):
    with h5py.File(run.aux, "r+") as handle:
        start = handle["train/start"][()]
        start[3] = np.nan
        handle["train/start"][...] = start
    _refused(["cluster", str(run.path), "--round", "1"], run.path, f"{run.aux}: train/start holds NaN or infinite values")


def test_nan_features_are_refused(run):
    with h5py.File(run.features(1), "r+") as handle:
        handle["train/features"][0, 0] = np.inf
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.features(1)}: train/features holds NaN or infinite values")


def test_nan_model_weights_never_replace_good_features(run):
    entries = torch.load(run.model(0), weights_only=True)
    entries["teacher"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    _rewrite_model(run.model(0), teacher=entries["teacher"])
    _refused(["extract", str(run.path), "--round", "1"], run.path,
             f"{run.model(0)}: the teacher weights hold NaN or infinite values (conv1.weight)")


def test_infinite_centroid_is_refused_by_train_round(run):
    with h5py.File(run.clusters(1), "r+") as handle:
        handle["centroids"][0, 0] = np.inf
    _refused(["train-round", str(run.path), "--round", "1"], run.path, f"{run.clusters(1)}: centroids holds NaN or infinite values")


def test_nan_eps_attribute_is_refused_by_report(run):
    with h5py.File(run.clusters(1), "r+") as handle:
        handle.attrs["eps"] = np.nan
    _refused(["report", str(run.path), "--out", str(run.path / "r.png")], run.path,
             f"{run.clusters(1)}: attribute 'eps' is nan, expected a finite number")


def test_nan_loss_in_metrics_log_is_refused_by_report(run):
    run.metrics_log.write_text(json.dumps({"kind": "round", "round": 1, "iterations": 1,
                                           "losses": {"total": float("nan")}}) + "\n")
    _refused(["report", str(run.path), "--out", str(run.path / "r.png")], run.path,
             f"{run.metrics_log} line 1: the round record's losses is not a valid number")


def test_manifest_frame_time_overflow_is_refused(tmp_path):
    manifest = _manifest(tmp_path, rows=["a.jpg,t1,1,train,1,1e308,1e-300", "b.jpg,t1,1,train,1,2,25"],
                         header="path,tracklet,camera,split,person_id,frame,fps")
    _refused(["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)], tmp_path,
             f"{manifest} line 2: frame 1e308 at fps 1e-300 is not a finite time in seconds")


def test_manifest_nan_timestamp_is_refused(tmp_path):
    manifest = _manifest(tmp_path, rows=["a.jpg,t1,1,train,1,nan", "b.jpg,t1,1,train,1,2"],
                         header="path,tracklet,camera,split,person_id,timestamp")
    _refused(["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)], tmp_path,
             f"{manifest} line 2: timestamp is 'nan', expected a finite number")


def test_synth_fps_infinity_is_refused(tmp_path, tiny_synth):
    copy = tmp_path / "synth"
    shutil.copytree(tiny_synth, copy)
    settings = json.loads((copy / "synth.json").read_text())
    (copy / "synth.json").write_text(json.dumps({**settings, "fps": float("inf")}))
    _refused(["datasets", "show", "--dataset", "synth", "--root", str(copy)], tmp_path,
             f"{copy / 'synth.json'}: fps is inf, expected a finite number > 0")


# --- class 5: corrupt or unexpected inputs --------------------------------------------------------------------


def _manifest(folder: Path, *, rows: list[str], header: str = "path,tracklet,camera,split,person_id",
              encoding: str = "utf-8", name: str = "m.csv") -> Path:
    for image in ("a.jpg", "b.jpg"):
        (folder / image).write_bytes(b"\xff\xd8")
    path = folder / name
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def test_non_utf8_config_file_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_bytes("seed: 1  # café\n".encode("latin-1"))
    _refused(["init", str(tmp_path / "r"), "--config", str(config)], tmp_path,
             f"config file {config} is not UTF-8 text (byte 0xe9")


def test_non_utf8_run_config_is_refused(run):
    _own(run.config_path)
    run.config_path.write_bytes(run.config_path.read_bytes() + "# \xe9\n".encode("latin-1"))
    _refused(["cluster", str(run.path), "--round", "1"], run.path, f"config file {run.config_path} is not UTF-8 text")


def test_python_tag_in_config_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: !!python/object/apply:os.getcwd []\n")
    _refused(["init", str(tmp_path / "r"), "--config", str(config)], tmp_path,
             f"config file {config} is not valid YAML", "python tags are refused")


def test_latin1_manifest_is_refused(tmp_path):
    manifest = _manifest(tmp_path, rows=["a.jpg,caf\xe9,1,train,1", "b.jpg,caf\xe9,1,train,1"], encoding="latin-1")
    _refused(["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)], tmp_path,
             f"manifest {manifest} is not UTF-8 text (byte 0xe9 on line 2)")


def test_csv_field_over_the_limit_is_refused(tmp_path):
    manifest = _manifest(tmp_path, rows=['a.jpg,"' + "t" * 200_000 + '",1,train,1'])
    _refused(["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)], tmp_path,
             f"{manifest} line 2: not a CSV row (field larger than field limit")


def test_person_id_beyond_int64_is_refused(tmp_path):
    manifest = _manifest(tmp_path, rows=["a.jpg,t1,1,train,99999999999999999999", "b.jpg,t1,1,train,1"])
    _refused(["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)], tmp_path,
             f"{manifest} line 2: person_id is '99999999999999999999', expected an integer within int64")


def test_corrupted_gzip_chunk_is_refused(run):
    with h5py.File(run.aux, "r") as handle:
        dataset = handle["sts/density"]
        assert dataset.compression == "gzip"
        chunk = dataset.id.get_chunk_info(0)
    with open(run.aux, "r+b") as handle:
        handle.seek(chunk.byte_offset + 8)
        handle.write(b"\x00\xff" * 16)
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.aux}: dataset 'sts/density' cannot be read", "the file is damaged")


def test_string_typed_features_are_refused(run):
    _set_dataset(run.features(1), "train/features", np.array(["x"] * 5, dtype=h5py.string_dtype()))
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.features(1)}: dataset 'train/features' is text of shape (5,), but the 'features' schema needs "
             "float with 2 dimensions")


def test_huge_declared_dataset_is_refused_unread(run):
    with h5py.File(run.features(1), "r+") as handle:
        del handle["train/features"]
        handle.create_dataset("train/features", shape=(2**32, 2**13), dtype="f4", chunks=(1, 2**13))
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.features(1)}: dataset 'train/features' declares shape (4294967296, 8192) (128 TiB",
             "more than this machine can hold")


def test_huge_dataset_a_stage_does_not_need_is_not_read(run):
    with h5py.File(run.features(1), "r+") as handle:
        handle.create_dataset("junk/huge", shape=(2**40, 2**5), dtype="f8", chunks=(1, 2**5))
    result = runner.invoke(app, ["cluster", str(run.path), "--round", "1"])
    assert result.exit_code == 0, result.output


def test_labels_of_the_wrong_type_are_refused(run):
    _set_dataset(run.clusters(1), "labels", np.zeros(3, dtype=np.float32))
    _refused(["train-round", str(run.path), "--round", "1"], run.path,
             f"{run.clusters(1)}: dataset 'labels' is float32 of shape (3,), but the 'clusters' schema needs integer")


def test_damaged_round_attribute_is_refused(run):
    with h5py.File(run.features(1), "r+") as handle:
        handle.attrs["round"] = "abc"
    _refused(["cluster", str(run.path), "--round", "1"], run.path,
             f"{run.features(1)}: provenance attribute 'round' is 'abc', expected an integer")


def test_invalid_yaml_in_model_is_refused(run):
    _rewrite_model(run.model(0), config_yaml="seed: [1, 2\n")
    _refused(["extract", str(run.path), "--round", "1"], run.path, f"{run.model(0)}'s stored config is not valid YAML")


def test_python_tag_in_model_config_is_refused(run):
    _rewrite_model(run.model(0), config_yaml="seed: !!python/object/apply:os.getcwd []\n")
    _refused(["extract", str(run.path), "--round", "1"], run.path, f"{run.model(0)}'s stored config is not valid YAML",
             "python tags are refused")


def test_python_tag_in_features_config_is_refused(run, tmp_path):
    with h5py.File(run.features(1), "r+") as handle:
        handle.attrs["config_yaml"] = "seed: !!python/name:os.system\n"
    _refused(["cluster", "--features", str(run.features(1)), "--out", str(tmp_path / "c.h5")], run.path,
             f"{run.features(1)}'s stored config is not valid YAML", "python tags are refused")


def test_text_round_in_model_is_refused(run):
    _rewrite_model(run.model(0), round="abc")
    _refused(["extract", str(run.path), "--round", "1"], run.path,
             f"{run.model(0)}: model.pt entry 'round' is 'abc', expected an integer >= 0")


def test_report_on_damaged_model_is_refused(run):
    data = run.model(0).read_bytes()
    run.model(0).unlink()
    run.model(0).write_bytes(data[: len(data) // 3])
    _refused(["report", str(run.path), "--out", str(run.path / "r.png")], run.path, str(run.model(0)))


def test_report_on_empty_clusters_file_is_refused(run):
    run.clusters(1).write_bytes(b"")
    _refused(["report", str(run.path), "--out", str(run.path / "r.png")], run.path,
             f"{run.clusters(1)} is not a readable HDF5 file")


def test_inspect_string_typed_features_is_refused(run):
    _set_dataset(run.features(1), "train/features", np.array(["x"] * 5, dtype=h5py.string_dtype()))
    _refused(["inspect", str(run.features(1))], run.path, f"{run.features(1)}: dataset 'train/features' is text")


# --- class 6: every numeric config key has a range ------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("seed=-1", "--set: 'seed' = -1 is out of range; it must be in [0, 2**32 - 1]"),
        ("seed=1180591620717411303424", "--set: 'seed' = 1180591620717411303424 is out of range"),
        ("evaluate.sts_lambda=-5", "--set: 'evaluate.sts_lambda' = -5.0 is out of range; it must be >= 0"),
        ("cluster.relaxed=.nan", "--set: 'cluster.relaxed' = nan is out of range; it must be null or a finite number"),
        ("evaluate.toc_penalty=.nan", "--set: 'evaluate.toc_penalty' = nan is out of range; it must be >= 0 and finite"),
        ("cluster.scp_lambda=.inf", "--set: 'cluster.scp_lambda' = inf is out of range; it must be >= 0 and finite"),
        ("train.watl_lambda=-.inf", "--set: 'train.watl_lambda' = -inf is out of range; it must be a finite number"),
        ("data.height=99999999999999999999", "--set: 'data.height' = 99999999999999999999 is out of range; it must be "
                                             ">= 16 and within int64"),
        ("train.lr=1" + "0" * 400, "--set: 'train.lr' = 1" + "0" * 400 + " is too large for a float"),
    ],
    ids=["seed-negative", "seed-2**70", "sts-lambda-negative", "relaxed-nan", "toc-penalty-nan", "scp-lambda-inf",
         "watl-lambda-inf", "height-beyond-int64", "lr-beyond-float"],
)
def test_out_of_range_setting_is_refused_naming_the_key(tmp_path, assignment, message):
    _refused(["init", str(tmp_path / "r"), "--config", "synth", "--set", assignment], tmp_path, message)


def test_out_of_range_value_in_a_yaml_file_names_the_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: .inf\n")
    _refused(["init", str(tmp_path / "r"), "--config", str(config)], tmp_path,
             f"{config}: 'train.lr' = inf is out of range; it must be > 0 and finite")


def test_out_of_range_setting_in_run_mode_keeps_the_clusters(run):
    _refused(["cluster", str(run.path), "--round", "1", "--set", "cluster.relaxed=.nan"], run.path,
             "--set: 'cluster.relaxed' = nan is out of range")


# --- classes 10 and 12: friendly input, clear messages -------------------------------------------------------


def test_manifest_with_a_byte_order_mark_is_read(tmp_path):
    manifest = _manifest(tmp_path, rows=["a.jpg,t1,1,train,1", "b.jpg,t1,1,train,1"], encoding="utf-8-sig")
    assert manifest.read_bytes().startswith(b"\xef\xbb\xbf")
    result = runner.invoke(app, ["datasets", "show", "--dataset", "manifest", "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "fingerprint" in result.output


def test_teacher_that_is_text_is_named_as_such(run):
    _rewrite_model(run.model(0), teacher="conv1.weight")
    line = _refused(["extract", str(run.path), "--round", "1"], run.path,
                    f"{run.model(0)}: model.pt entry 'teacher' is a str, expected a state dict")
    assert "unknown keys" not in line


def test_inspect_directory_says_it_is_one(run):
    _refused(["inspect", str(run.round_dir(1))], run.path, f"{run.round_dir(1)} is a directory")
