"""`auxreid cluster` through the CLI: a run's round end to end, the zero-cluster report, one-line errors."""

import numpy as np
import pytest
from typer.testing import CliRunner

from auxreid_cli.main import app
from stages.artifacts.h5 import read_artifact
from stages.artifacts.schemas import CLUSTERS
from stages.config import Config
from stages.rundir import RunDir, write_run_config
from test_cluster import FINGERPRINT, synthetic_truth, write_inputs

runner = CliRunner()


@pytest.fixture(autouse=True)
def _run_dataset(monkeypatch):
    """These runs name no dataset on disk; their artifacts are made for the fingerprint FINGERPRINT."""
    monkeypatch.setattr("stages.rundir.run_fingerprint", lambda run, config: ("synth", FINGERPRINT))


def _run_dir(**cluster):
    config = Config()
    config.cluster.k1, config.cluster.rlsce_k, config.cluster.rho = 20, 10, 0.05
    for key, value in cluster.items():
        setattr(config.cluster, key, value)
    run = RunDir.resolve("exp")
    write_run_config(run, config)
    return run


def test_cluster_command_clusters_rounds_and_reuses_eps():
    run = _run_dir(toc=True)
    for round in (1, 2):
        run.round_dir(round).mkdir(parents=True)
        features, aux = write_inputs(run.round_dir(round), synthetic_truth(noise=1.0, seed=round), round=round)
        aux.replace(run.aux)
        result = runner.invoke(app, ["cluster", "exp", "--round", str(round)])
        assert result.exit_code == 0, result.output
        assert "wrote" in result.output and run.clusters(round).is_file()
        assert "cannot-link violations" in result.output
        # round 2 replaced aux.h5, so round 1's clusters (read back for their eps) are stale: said, not refused
        if round == 1:
            assert "warning" not in result.output
        else:
            assert (f"warning: {run.clusters(1)} is stale: it was made from inputs that have changed since "
                    f"(aux {run.aux} changed); re-run `auxreid cluster`") in result.output
    first, second = (read_artifact(run.clusters(r), CLUSTERS) for r in (1, 2))
    assert second.attrs["eps"] == first.attrs["eps"] and second.attrs["eps_source"].startswith("adaptive, from")
    assert first.attrs["cannot_link_violations"] == 0 and np.isfinite(first["quality/nmi"])


def test_cluster_command_reports_zero_clusters_and_errors(tmp_path):
    features, _ = write_inputs(tmp_path, synthetic_truth(people=180, per_person=1), with_aux=False)
    out = tmp_path / "c.h5"
    result = runner.invoke(app, ["cluster", "--features", str(features), "--out", str(out), "--set", "cluster.sts=false",
                                 "--set", "cluster.eps_mode=fixed", "--set", "cluster.eps=0.01"])
    assert result.exit_code == 0, result.output
    assert read_artifact(out, CLUSTERS).attrs["num_clusters"] == 0
    said = " ".join(result.output.split())
    assert "has no clusters: every tracklet is noise at eps=0.01; raise cluster.eps above 0.01" in said
    assert said.count("has no clusters") == 1 and said.count("warning:") == 1  # once, from the stage's progress.warn
    assert "cluster.eps=0.01" not in said
    missing = runner.invoke(app, ["cluster"])
    assert missing.exit_code == 1
    assert "error: give RUN --round R, or --features F.h5 --out C.h5 (see `auxreid cluster --help`)" in missing.output
    run = _run_dir(toc=True, sts=False)
    no_features = runner.invoke(app, ["cluster", "exp", "--round", "1"])
    assert no_features.exit_code == 1 and "Traceback" not in no_features.output
    assert "features.h5 does not exist; run `auxreid extract exp --round 1` first" in " ".join(no_features.output.split())
    write_inputs(run.round_dir(1), synthetic_truth(), with_aux=False)
    no_aux = runner.invoke(app, ["cluster", "exp", "--round", "1"])
    assert no_aux.exit_code == 1
    assert ("aux.h5 does not exist but cluster.toc needs it; run `auxreid mine-aux exp` first or set cluster.toc=false"
            in " ".join(no_aux.output.split()))


def test_cluster_command_device_option(tmp_path):
    features, _ = write_inputs(tmp_path, synthetic_truth(), with_aux=False)
    args = ["cluster", "--features", str(features), "--out", str(tmp_path / "c.h5"), "--set", "cluster.sts=false"]
    ok = runner.invoke(app, [*args, "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    written = (tmp_path / "c.h5").read_bytes()
    args.append("--force")  # replace c.h5: the device is checked next
    bad = runner.invoke(app, [*args, "--device", "gpu"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert bad.output.strip() == "error: unknown device 'gpu'; use auto, cpu, cuda or cuda:N"
    if not __import__("torch").cuda.is_available():
        absent = runner.invoke(app, [*args, "--device", "cuda:0"])
        assert absent.exit_code == 1
        assert absent.output.strip() == ("error: device 'cuda:0' was asked for but CUDA is not available here; "
                                         "use --device cpu or auto")
    assert (tmp_path / "c.h5").read_bytes() == written
