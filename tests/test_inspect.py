"""stages/inspect_artifact.py: what `auxreid inspect` shows of each kind of file, and which options it refuses."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CONFIGS
from stages.artifacts.h5 import make_provenance, write_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.schemas import CLUSTERS
from stages.config import Config
from stages.errors import AuxReidError
from stages.inspect_artifact import dataset_row, file_kind, inspect_file


def _clusters(path: Path, parent: Path | None = None) -> Path:
    provenance = make_provenance(CLUSTERS, dataset="synth", fingerprint="f00d", round=2,
                                 parents={"features": parent} if parent else None)
    data = {"labels": np.array([0, 0, 1, -1]), "centroids": np.zeros((2, 3), np.float32),
            "nearest_clusters": np.array([[1], [0]]), "sizes": np.array([2, 1]), "quality/nmi": np.float64(0.5)}
    return write_artifact(path, provenance, data, attrs={"num_clusters": 2, "eps": 0.5, "eps_source": "fixed"})


def test_h5_artifact_provenance_datasets_and_summary(tmp_path):
    parent = tmp_path / "features.h5"
    parent.write_bytes(b"f")
    result = inspect_file(_clusters(tmp_path / "clusters.h5", parent))
    assert result.kind == "hdf5" and result.drawing is None and result.note == ""
    title, rows = result.provenance
    assert title == f"{tmp_path / 'clusters.h5'} (clusters v1)"
    shown = dict(rows)
    assert shown["dataset"] == "synth" and shown["round"] == "2" and shown["eps_source"] == "fixed"
    assert shown["parent features"].endswith(" (features.h5)")
    assert [row[0] for row in result.datasets] == ["centroids", "labels", "nearest_clusters", "quality/nmi", "sizes"]
    assert result.datasets[1] == ("labels", "(4,)", "int64", "min -1  mean 0  max 1")
    assert [title for title, _ in result.sections] == ["clusters", "cluster sizes", "quality vs ids"]


def test_h5_drawing_options_are_checked_before_anything_is_drawn(tmp_path):
    path = _clusters(tmp_path / "clusters.h5")
    drawing = inspect_file(path, montage=1, out=tmp_path / "m.png").drawing
    assert (drawing.option, drawing.cluster, drawing.out) == ("--montage", 1, tmp_path / "m.png")
    with pytest.raises(AuxReidError, match=r"^--montage needs --out FILE.png to say where to draw$"):
        inspect_file(path, montage=1)
    with pytest.raises(AuxReidError, match=r"^--plot needs a 'aux' artifact, but \S+clusters.h5 is a 'clusters' artifact$"):
        inspect_file(path, plot=tmp_path / "p.png")
    with pytest.raises(AuxReidError, match=r"^--ranklist needs a 'eval' artifact"):
        inspect_file(path, ranklist="worst", out=tmp_path / "r.png")
    assert not list(tmp_path.glob("*.png"))


def test_h5_drawing_of_a_cluster_the_file_lacks_is_refused_before_reading_on(tmp_path):
    path = _clusters(tmp_path / "clusters.h5")
    for cluster in (2, -1):
        with pytest.raises(AuxReidError, match=rf"^cluster {cluster} does not exist; {re.escape(str(path))} has "
                                               r"clusters 0\.\.1$"):
            inspect_file(path, montage=cluster, out=tmp_path / "m.png")
    assert not list(tmp_path.glob("*.png"))


def test_model_pt_summary_and_no_drawing(tmp_path):
    path = save_model(tmp_path / "model.pt", student={"w": torch.zeros(3)}, teacher={"w": torch.zeros(3)},
                      config=Config(), round=4, step=12, dataset="synth", fingerprint="beef", extra={"iterations": 9})
    result = inspect_file(path)
    assert result.kind == "model" and result.provenance is None and result.datasets == []
    model_rows = dict(result.sections[0][1])
    assert model_rows["format"] == "auxreid-model v2" and model_rows["round"] == "4" and model_rows["fingerprint"] == "beef"
    assert dict(result.sections[1][1])["iterations"] == "9"
    with pytest.raises(AuxReidError, match=r"^--plot / --montage / --ranklist need an HDF5 artifact, but \S+model.pt "
                                           r"is a model file$"):
        inspect_file(path, montage=1, out=tmp_path / "m.png")


def test_config_yaml_is_validated_and_shown_by_section(tmp_path):
    result = inspect_file(CONFIGS / "synth.yaml")
    assert result.kind == "config" and result.note.endswith("synth.yaml: a valid config (unknown keys and "
                                                            "out-of-range values would be errors)")
    sections = dict(result.sections)
    assert "top level" in sections and dict(sections["cluster"])["rlsce_k"] == "20"
    (tmp_path / "old.yaml").write_text("train:\n  rlsce_k: 5\n")
    with pytest.raises(AuxReidError, match=r"old.yaml: unknown config key 'train.rlsce_k'; did you mean 'cluster.rlsce_k'"):
        inspect_file(tmp_path / "old.yaml")


def test_directory_and_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(AuxReidError, match=r"^\S+ is a directory; give a file inside it \(an .h5 artifact, a model.pt or "
                                           r"a config YAML\), or `auxreid status RUN` for a whole run$"):
        inspect_file(tmp_path)
    with pytest.raises(AuxReidError, match=r"^\S+nope.h5 does not exist; run the stage that writes it first$"):
        file_kind(tmp_path / "nope.h5")


def test_dataset_row_summaries():
    assert dataset_row("v", np.array([1.0, np.nan, 3.0]))[3] == "min 1  mean 2  max 3"
    assert dataset_row("v", np.array([np.nan]))[3] == "no finite values"
    assert dataset_row("names", np.array(["a", "b"])) == ("names", "(2,)", "<U1", "e.g. a")
    assert dataset_row("e", np.zeros(0))[3] == "empty"
