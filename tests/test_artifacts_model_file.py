"""Tests for stages/artifacts/model_file.py: read_model_file refuses pickled objects and foreign files."""

import pytest
import torch

from stages.artifacts.model_file import read_model_file
from stages.errors import AuxReidError


def test_read_model_file_refuses_pickled_objects_and_foreign_files(tmp_path):
    torch.save({"format": "auxreid-model", "when": __import__("datetime").date(2020, 1, 1)}, tmp_path / "p.pt")
    with pytest.raises(AuxReidError, match=r"p.pt cannot be loaded with weights_only=True \(it pickles the object datetime.date\)"):
        read_model_file(tmp_path / "p.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "f.pt")
    with pytest.raises(AuxReidError, match=r"f.pt is not an auxreid model file; convert a reference checkpoint"):
        read_model_file(tmp_path / "f.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(AuxReidError, match=r"junk.pt is not a readable torch file"):
        read_model_file(tmp_path / "junk.pt")
    with pytest.raises(AuxReidError, match=r"model file .*missing.pt does not exist"):
        read_model_file(tmp_path / "missing.pt")
