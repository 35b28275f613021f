"""Tests for stages/artifacts/model_file.py and stages/model/checkpoint.py: model.pt provenance, refusal of other versions."""

from __future__ import annotations

import pytest
import torch

from stages.artifacts.model_file import read_model_file, save_model
from stages.config import build_config, config_hash
from stages.errors import AuxReidError
from stages.model.checkpoint import build_network
from stages.model.pretrained import initial_model


def _config():
    return build_config(({"model": {"arch": "resnet18", "pretrained": "none"}}, "test"))


def test_save_model_records_provenance_and_parent_hashes(tmp_path):
    config = _config()
    model = initial_model(config, num_classes=3)
    parent = tmp_path / "clusters.h5"
    parent.write_bytes(b"clusters")
    path = save_model(tmp_path / "model.pt", student=model, teacher=model, config=config, round=2, step=7,
                      dataset="synth", fingerprint="abc123", parents={"clusters": parent})
    model_file = read_model_file(path)
    assert (model_file.round, model_file.step, model_file.dataset, model_file.fingerprint) == (2, 7, "synth", "abc123")
    import hashlib

    assert model_file.parents == {"clusters": hashlib.sha256(b"clusters").hexdigest()}
    assert model_file.entries["parents"]["clusters"]["path"] == "clusters.h5"
    assert model_file.parent_paths == {"clusters": parent}
    assert model_file.entries["config_hash"] == config_hash(config)
    assert model_file.entries["created"].endswith("+00:00")
    assert torch.equal(build_network(model_file).conv1.weight, model.conv1.weight)


def test_save_model_refuses_extra_entries_that_shadow_provenance(tmp_path):
    config = _config()
    model = initial_model(config, num_classes=2)
    with pytest.raises(ValueError, match="fingerprint"):
        save_model(tmp_path / "m.pt", student=model, teacher=model, config=config, round=0, step=0,
                   extra={"fingerprint": "x"})
    assert not list(tmp_path.iterdir())


def test_read_model_file_refuses_version_1_like_any_other_version(tmp_path):
    config = _config()
    model = initial_model(config, num_classes=2)
    path = save_model(tmp_path / "m.pt", student=model, teacher=model, config=config, round=1, step=3)
    entries = torch.load(path, weights_only=True)
    entries["version"] = 1
    torch.save(entries, path)
    with pytest.raises(AuxReidError, match=r"^\S*m.pt is model format version 1, this auxreid reads version 2; "
                                           r"re-create it with this version$"):
        read_model_file(path)


def test_read_model_file_refuses_missing_provenance(tmp_path):
    config = _config()
    model = initial_model(config, num_classes=2)
    path = save_model(tmp_path / "m.pt", student=model, teacher=model, config=config, round=1, step=3)
    entries = torch.load(path, weights_only=True)
    for key in ("fingerprint", "parents"):
        entries.pop(key)
    torch.save(entries, path)
    with pytest.raises(AuxReidError, match=r"m.pt lacks the model.pt entries fingerprint, parents; re-create it$"):
        read_model_file(path)


def test_read_model_file_refuses_unknown_version_and_maps_tensors_on_request(tmp_path):
    config = _config()
    model = initial_model(config, num_classes=2)
    path = save_model(tmp_path / "m.pt", student=model, teacher=model, config=config, round=1, step=3)
    assert read_model_file(path, mmap=True).step == 3
    entries = torch.load(path, weights_only=True)
    entries["version"] = 9
    torch.save(entries, path)
    with pytest.raises(AuxReidError, match=r"m.pt is model format version 9, this auxreid reads version 2; re-create it"):
        read_model_file(path)
