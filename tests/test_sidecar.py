"""Tests of stages/artifacts/sidecar.py: the record each artifact carries of its own bytes, and what status and the
stale checks make of it (no hashing while it fits, no torch for a model.pt, hashing again when it does not)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.artifacts import h5, sidecar
from stages.artifacts.h5 import make_provenance, read_provenance, write_artifact
from stages.artifacts.model_file import read_model_file, save_model
from stages.artifacts.readers import model_provenance, recorded_parents, recorded_provenance, stale_parents
from stages.artifacts.schemas import AUX, CLUSTERS, FEATURES
from stages.artifacts.sidecar import RECORD_ATTR, current_sha256, read_record, sha256_of_file
from stages.config import Config
from stages.rundir import RunDir, write_run_config
from stages.status import run_status

ROOT = Path(__file__).resolve().parents[1]
ONES = np.float32(1).tobytes()  # the features' values, found in the file to change one in place


@pytest.fixture(autouse=True)
def _records_kept(tmp_path):
    """The records live in extended attributes: skip where tmp_path's file system keeps none."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.auxreid.probe", b"1")
    except (OSError, AttributeError):
        pytest.skip("the file system of tmp_path keeps no user extended attributes")
    probe.unlink()


def _h5(path: Path, schema, config: Config, parents: dict[str, Path], data: dict[str, np.ndarray], round: int = 1):
    provenance = make_provenance(schema, dataset="synth", fingerprint="fp", round=round, config=config, parents=parents)
    return write_artifact(path, provenance, data)


def _model(path: Path, config: Config, round: int, parents: dict[str, Path] | None = None) -> Path:
    state = {"w": torch.arange(4, dtype=torch.float32)}
    return save_model(path, student=state, teacher=state, config=config, round=round, step=round, dataset="synth",
                      fingerprint="fp", parents=parents)


def _run(root: Path, config: Config | None = None) -> RunDir:
    """config.yaml, round 0's model, round 1's features, aux.h5, clusters and model, each recording its parents."""
    config = config or Config()
    run = RunDir(root / "run")
    write_run_config(run, config)
    _model(run.model(0), config, 0)
    run.round_dir(1).mkdir()
    _h5(run.features(1), FEATURES, config, {"model": run.model(0)}, {"train/features": np.ones((64, 8), np.float32)})
    _h5(run.aux, AUX, config, {"features": run.features(1)}, {"train/camera": np.zeros(64, np.int64)}, round=0)
    _h5(run.clusters(1), CLUSTERS, config, {"features": run.features(1), "aux": run.aux},
        {"labels": np.zeros(64, np.int64), "centroids": np.ones((1, 8), np.float32),
         "nearest_clusters": np.zeros((1, 1), np.int64)})
    _model(run.model(1), config, 1, {"clusters": run.clusters(1), "model": run.model(0)})
    return run


def _hashes(monkeypatch) -> list[Path]:
    """Every file hashed from here on (sidecar's cache of this process emptied first)."""
    hashed: list[Path] = []
    monkeypatch.setattr(sidecar, "_HASHED", {})

    def counting(path):
        hashed.append(Path(path))
        return sha256_of_file(path)

    monkeypatch.setattr(sidecar, "sha256_of_file", counting)
    return hashed


def _stale(run: RunDir) -> dict[str, list[str]]:
    return {row.name: [s.name for s in row.stale] for row in run_status(run) if row.exists and not row.problem}


def _change_in_place(path: Path) -> os.stat_result:
    """One float of the file's features made 2.0 instead of 1.0, written into the file (its record stays): same size.

    Returns:
        The file's stat before the change.
    """
    before = path.stat()
    data = bytearray(path.read_bytes())
    at = data.rindex(ONES * 8)
    data[at:at + 4] = np.float32(2).tobytes()
    with open(path, "r+b") as handle:
        handle.write(data)
    return before


def test_every_artifact_records_its_bytes_and_provenance_and_no_file_beside_it(tmp_path):
    run = _run(tmp_path)
    for path in (run.features(1), run.aux, run.clusters(1), run.model(0), run.model(1)):
        record, stat = read_record(path), path.stat()
        assert (record.sha256, record.size, record.mtime_ns) == (sha256_of_file(path), stat.st_size, stat.st_mtime_ns)
        if path.suffix == ".h5":
            assert recorded_provenance(path) == read_provenance(path)[0]
    assert sorted(p.name for p in run.path.rglob("*")) == [
        "aux.h5", "clusters.h5", "config.yaml", "features.h5", "model.pt", "model.pt", "round_000", "round_001"]


def test_a_model_records_its_provenance_as_the_file_holds_it(tmp_path):
    run = _run(tmp_path)
    recorded = recorded_provenance(run.model(1))
    os.removexattr(run.model(1), RECORD_ATTR)
    assert recorded_provenance(run.model(1)) is None and model_provenance(run.model(1)) == recorded
    entries = read_model_file(run.model(1)).entries
    assert (recorded.schema, recorded.schema_version, recorded.round, recorded.created, recorded.config_yaml) == (
        "model", 2, 1, entries["created"], entries["config_yaml"])
    assert recorded_parents(run.model(1))["model"].path == run.model(0)


def test_the_record_is_on_the_file_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    seen = []
    rename = os.replace

    def replace(src, dst):
        seen.append((Path(dst).name, read_record(src)))
        rename(src, dst)

    monkeypatch.setattr(h5.os, "replace", replace)
    _run(tmp_path)
    assert [name for name, _ in seen] == [
        "config.yaml", "model.pt", "features.h5", "aux.h5", "clusters.h5", "model.pt"]
    assert [record is not None for _, record in seen] == [False, True, True, True, True, True]


def test_status_of_a_run_imports_no_torch(tmp_path):
    run = _run(tmp_path)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "auxreid_cli.main", "status", str(run.path)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stdout + done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "h5py" in imported and not {name for name in imported if name.split(".")[0] == "torch"}
    assert done.stdout.splitlines()[-1] == "6 artifacts, none stale (-: no parent recorded)"


def test_status_opens_or_hashes_no_file_whose_record_fits(tmp_path, monkeypatch):
    run = _run(tmp_path)
    hashed = _hashes(monkeypatch)

    def refuse(*args, **kwargs):
        raise AssertionError(f"opened {args[0]}")

    monkeypatch.setattr(h5.h5py, "File", refuse)
    assert _stale(run) == {name: [] for name in ("config.yaml", "aux.h5", "round_000/model.pt", "round_001/features.h5",
                                                 "round_001/clusters.h5", "round_001/model.pt")}
    assert hashed == []


def test_without_records_status_hashes_each_parent_once_and_says_the_same(tmp_path, monkeypatch):
    run = _run(tmp_path)
    rows = run_status(run)
    for path in (run.features(1), run.aux, run.clusters(1), run.model(0), run.model(1)):
        os.removexattr(path, RECORD_ATTR)
    hashed = _hashes(monkeypatch)
    assert run_status(run) == rows
    assert sorted(hashed) == sorted([run.model(0), run.features(1), run.aux, run.clusters(1)])


def test_a_parent_changed_to_the_same_size_with_a_new_mtime_is_stale(tmp_path, monkeypatch):
    run = _run(tmp_path)
    before = _change_in_place(run.features(1))
    os.utime(run.features(1), ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert run.features(1).stat().st_size == before.st_size and read_record(run.features(1)) is None
    hashed = _hashes(monkeypatch)
    stale = _stale(run)
    assert stale["round_001/clusters.h5"] == ["features"] and stale["aux.h5"] == ["features"]
    assert hashed == [run.features(1)]  # once, for both children
    change = stale_parents(run.clusters(1))[0]
    assert change.current_sha == sha256_of_file(run.features(1)) != change.recorded_sha


def test_a_touched_but_identical_parent_is_not_stale(tmp_path, monkeypatch):
    run = _run(tmp_path)
    stat = run.features(1).stat()
    os.utime(run.features(1), ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    hashed = _hashes(monkeypatch)
    assert _stale(run)["round_001/clusters.h5"] == [] and hashed == [run.features(1)]


def test_a_record_that_lies_is_believed_size_and_mtime_are_the_contract(tmp_path, monkeypatch):
    """Content changed in place, size kept and mtime set back: as for make, the file is taken as unchanged."""
    run = _run(tmp_path)
    recorded = read_record(run.features(1)).sha256
    before = _change_in_place(run.features(1))
    os.utime(run.features(1), ns=(before.st_atime_ns, before.st_mtime_ns))
    hashed = _hashes(monkeypatch)
    assert current_sha256(run.features(1)) == recorded != sha256_of_file(run.features(1))
    assert _stale(run)["round_001/clusters.h5"] == [] and hashed == []


def test_a_file_system_without_records_writes_and_checks_all_the_same(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    run = _run(tmp_path)
    assert all(read_record(p) is None for p in (run.features(1), run.aux, run.clusters(1), run.model(1)))
    _h5(run.features(1), FEATURES, Config(), {"model": run.model(0)}, {"train/features": np.zeros((64, 8), np.float32)})
    stale = _stale(run)
    assert stale["round_001/clusters.h5"] == ["features"] and stale["round_001/model.pt"] == []


def test_a_model_record_too_big_with_its_provenance_is_kept_without_it(tmp_path, monkeypatch):
    setxattr = os.setxattr

    def small_only(path, name, value):
        if len(value) > 200:
            raise OSError(errno.E2BIG, "Argument list too long")
        setxattr(path, name, value)

    monkeypatch.setattr(os, "setxattr", small_only)
    path = _model(tmp_path / "model.pt", Config(), 3)
    record = read_record(path)
    assert record.provenance is None and record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert recorded_provenance(path) is None and model_provenance(path).round == 3  # read from the file


def test_numpy_numbers_in_a_provenance_are_recorded_as_plain_numbers(tmp_path):
    provenance = make_provenance(FEATURES, dataset="synth", fingerprint="fp", round=np.int64(2), config=Config())
    provenance.schema_version = np.int32(1)
    path = write_artifact(tmp_path / "features.h5", provenance, {"train/features": np.ones((2, 2), np.float32)})
    assert recorded_provenance(path) == read_provenance(path)[0] and recorded_provenance(path).round == 2
