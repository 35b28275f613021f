"""`auxreid extract` and `auxreid import-weights` through the CLI: files written, exit codes, error text."""

import torch
from typer.testing import CliRunner

from auxreid_cli.main import app
from helpers_frames import tiny_config, tiny_dataset
from stages.artifacts.h5 import read_artifact
from stages.artifacts.model_file import read_model_file, save_model
from stages.artifacts.schemas import FEATURES
from stages.model.checkpoint import build_network
from stages.model.network import ReidModel
from stages.model.pretrained import initial_model
from stages.rundir import RunDir, write_run_config

runner = CliRunner()


def test_extract_run_round_writes_features_and_reports_missing_model(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path / "data", (3, 2, 4), ext="jpg")
    for where in ("stages.rundir", "stages.extract"):  # the run's fingerprint check, then the stage
        monkeypatch.setattr(f"{where}.load_dataset", lambda data: dataset)
    config = tiny_config()
    run = RunDir.resolve("exp")
    write_run_config(run, config)
    model = initial_model(config, num_classes=3)
    save_model(run.model(0), student=model, teacher=model, config=config, round=0, step=0)
    result = runner.invoke(app, ["extract", "exp", "--round", "1"])
    assert result.exit_code == 0, result.output
    artifact = read_artifact(run.features(1), FEATURES, fingerprint=dataset.fingerprint, round=1)
    assert artifact["train/features"].shape == (3, 512) and artifact.attrs["mode"] == "cluster"
    assert "frames/s" in result.output and "train features" in result.output
    missing = runner.invoke(app, ["extract", "exp", "--round", "3"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert f"error: {run.model(2)} does not exist; train round 2 first" in missing.output
    mixed = runner.invoke(app, ["extract", "exp", "--round", "1", "--mode", "infer"])
    assert mixed.exit_code == 1
    assert "RUN --round R always extracts train in cluster mode; --split, --mode and --out go with --model" in mixed.output

    broken = dataset.query[0].frames[0]
    open(broken, "wb").write(open(broken, "rb").read()[:40])
    args = ["extract", "--model", str(run.model(0)), "--split", "query,gallery", "--mode", "infer", "--out", str(tmp_path / "q.h5")]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and f"error: cannot read frame {broken} (query tracklet query/t0)" in failed.output
    skipped = runner.invoke(app, [*args, "--skip-bad-frames"])
    assert skipped.exit_code == 0, skipped.output
    assert "1 bad frames skipped" in skipped.output and "skipping unreadable frame" in skipped.output
    written = read_artifact(tmp_path / "q.h5", FEATURES, round=0)
    assert written.attrs["bad_frames_skipped"] == 1 and written["gallery/features"].shape == (3, 512)
    assert written["query/frames_used"].tolist() == [2, 2, 4]


def test_import_weights_converts_and_lists_bad_keys(tmp_path):
    torch.manual_seed(0)
    model = ReidModel(arch="resnet18", num_classes=4)
    names = {"conv1.": "base.0.", "bn1.": "base.1.", "layer1.": "base.3.", "layer2.": "base.4.",
             "layer3.": "base.5.", "layer4.": "base.6.", "neck.": "feat_bn.", "classifier.": "classifier."}
    state = {}
    for key, value in model.state_dict().items():
        ours = next(p for p in names if key.startswith(p))
        state["module." + names[ours] + key[len(ours):]] = value
    torch.save({"state_dict": state, "epoch": 12, "best_mAP": 0.5}, tmp_path / "ref.pth")
    result = runner.invoke(app, ["import-weights", str(tmp_path / "ref.pth"), "--out", str(tmp_path / "m.pt"),
                                 "--arch", "resnet18"])
    assert result.exit_code == 0, result.output
    assert "resnet18, 4 classifier outputs, epoch 12.0, best_mAP 0.5" in result.output
    assert torch.equal(build_network(read_model_file(tmp_path / "m.pt")).conv1.weight, model.conv1.weight)
    state["module.extra.bias"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    bad = runner.invoke(app, ["import-weights", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "b.pt")])
    assert bad.exit_code == 1 and not (tmp_path / "b.pt").exists()
    assert "has keys outside the reference layout (base.0/1/3-6, feat_bn, classifier): module.extra.bias" in bad.output
