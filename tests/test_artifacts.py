"""HDF5 artifacts: provenance round trip, validation on read, atomic writes."""

import os

import h5py
import numpy as np
import pytest

from stages.artifacts import h5 as artifacts
from stages.artifacts.h5 import RowBlocks, Schema, make_provenance, read_artifact, read_provenance, write_artifact
from stages.config import Config
from stages.errors import AuxReidError

SCHEMA = Schema("features", 1, ("train/features",))


def _write(path, value=1.0, fingerprint="abc", round=2, parents=None):
    provenance = make_provenance(SCHEMA, dataset="synth", fingerprint=fingerprint, round=round, config=Config(),
                                 parents=parents)
    data = {"train/features": np.full((3, 4), value, dtype=np.float32), "train/camera": np.arange(3),
            "names": np.array(["a", "bb", "ccc"])}
    return write_artifact(path, provenance, data, attrs={"mode": "cluster"})


def test_write_artifact_round_trips_provenance_and_data(tmp_path):
    parent = tmp_path / "parent.bin"
    parent.write_bytes(b"hello")
    path = _write(tmp_path / "f.h5", parents={"aux": parent})
    art = read_artifact(path, SCHEMA, fingerprint="abc", round=2)
    assert art.provenance.schema == "features" and art.provenance.round == 2 and art.provenance.dataset == "synth"
    assert art.provenance.parents == {"aux": artifacts.file_sha256(parent)}
    assert art.provenance.config_hash and "cluster:" in art.provenance.config_yaml
    assert art.attrs == {"mode": "cluster"}
    np.testing.assert_array_equal(art["train/features"], np.ones((3, 4), np.float32))
    assert art["train/features"].dtype == np.float32 and list(art["names"]) == ["a", "bb", "ccc"]
    assert sorted(os.listdir(tmp_path)) == ["f.h5", "parent.bin"]


def test_write_artifact_refuses_a_parent_without_its_location(tmp_path):
    parent = tmp_path / "parent.bin"
    parent.write_bytes(b"hello")
    provenance = make_provenance(SCHEMA, dataset="synth", fingerprint="abc", round=0, parents={"aux": parent})
    provenance.parent_paths.clear()
    with pytest.raises(ValueError, match=r"need both a SHA-256 and a location: \['aux'\]"):
        write_artifact(tmp_path / "f.h5", provenance, {"train/features": np.ones((1, 1), np.float32)})
    assert not (tmp_path / "f.h5").exists()


def test_read_artifact_refuses_fingerprint_mismatch(tmp_path):
    path = _write(tmp_path / "f.h5")
    with pytest.raises(AuxReidError, match=r"f.h5 was made from dataset 'synth' with split fingerprint abc, but the "
                                           r"current dataset's fingerprint is xyz"):
        read_artifact(path, SCHEMA, fingerprint="xyz")


def test_read_artifact_refuses_schema_round_and_missing_dataset(tmp_path):
    path = _write(tmp_path / "f.h5")
    with pytest.raises(AuxReidError, match="is a 'features' artifact but a 'clusters' artifact is needed here"):
        read_artifact(path, Schema("clusters", 1, ()))
    with pytest.raises(AuxReidError, match="has features schema version 1, this auxreid reads version 2"):
        read_artifact(path, Schema("features", 2, ()))
    with pytest.raises(AuxReidError, match="is from round 2, but round 3 is needed here"):
        read_artifact(path, SCHEMA, round=3)
    with pytest.raises(AuxReidError, match="lacks the dataset\\(s\\) query/features required by the 'features' schema"):
        read_artifact(path, Schema("features", 1, ("query/features",)))
    with pytest.raises(AuxReidError, match="has no dataset 'labels'"):
        read_artifact(path)["labels"]


def test_read_artifact_refuses_foreign_and_missing_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(AuxReidError, match="lacks the provenance attribute\\(s\\) schema, schema_version"):
        read_provenance(foreign)
    with pytest.raises(AuxReidError, match="missing.h5 does not exist"):
        read_artifact(tmp_path / "missing.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(AuxReidError, match="garbage.h5 is not a readable HDF5 file"):
        read_artifact(garbage)


def test_write_artifact_crash_before_rename_keeps_old_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "f.h5", value=1.0)

    def crash(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(artifacts.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        _write(path, value=7.0)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["f.h5"]
    np.testing.assert_array_equal(read_artifact(path)["train/features"], np.ones((3, 4), np.float32))


def test_write_artifact_crash_during_write_leaves_no_partial_file(tmp_path):
    class Boom(Exception):
        pass

    def data_then_crash():
        yield "a", np.zeros(3)
        raise Boom

    class CrashingData(dict):
        def items(self):
            return data_then_crash()

    provenance = make_provenance(SCHEMA, dataset="synth", fingerprint="abc", round=0)
    with pytest.raises(Boom):
        write_artifact(tmp_path / "f.h5", provenance, CrashingData())
    assert os.listdir(tmp_path) == []


def test_write_artifact_fills_row_blocks_in_order(tmp_path):
    blocks = [np.full((2, 3), i, dtype=np.float32) for i in range(3)] + [np.full((1, 3), 9, dtype=np.float32)]
    provenance = make_provenance(SCHEMA, dataset="synth", fingerprint="abc", round=0)
    column = RowBlocks((7, 3), np.dtype(np.float32), lambda: iter(blocks))
    path = write_artifact(tmp_path / "f.h5", provenance, {"train/features": column})
    stored = read_artifact(path, SCHEMA)["train/features"]
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, np.concatenate(blocks))


@pytest.mark.parametrize("rows, message", [(5, "hold more than its 5 rows"), (9, "hold 7 rows, its shape")])
def test_write_artifact_refuses_row_blocks_of_another_length(tmp_path, rows, message):
    provenance = make_provenance(SCHEMA, dataset="synth", fingerprint="abc", round=0)
    blocks = RowBlocks((rows, 3), np.dtype(np.float32),
                       lambda: iter([np.zeros((3, 3), np.float32), np.zeros((4, 3), np.float32)]))
    with pytest.raises(ValueError, match=message):
        write_artifact(tmp_path / "f.h5", provenance, {"train/features": blocks})
    assert os.listdir(tmp_path) == []
