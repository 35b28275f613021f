"""`auxreid inspect` through the CLI on a real run's artifacts: the tables, the three drawings, and every option
combination and file it refuses.

A custom-schema artifact, a missing file, --montage on another schema or on a model.pt, model.pt and config YAML
summaries are in tests/test_cli_core.py; --ranklist with unknown rows, out-of-range rows or without the dataset's
images in tests/test_evaluate.py (test_ranklist_without_images_raises); a directory and text-typed features in
tests/bad_inputs/test_bad_values.py.
"""

from __future__ import annotations

import pytest
from PIL import Image

from stages.artifacts.h5 import file_sha256, read_artifact
from stages.artifacts.readers import read_clusters
from stages.artifacts.schemas import FEATURES
from test_cli_train_round import built_run, invoke, refused


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


def _cells(output: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every table row printed."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) > 1:
            rows.setdefault(cells[0], cells[1:])
    return rows


def _png(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        return image.size


def test_inspect_features_lists_every_dataset_as_the_reader_reads_it(base):
    path = base / "round_001" / "features.h5"
    result = invoke("inspect", path)
    assert result.exit_code == 0, result.output
    artifact = read_artifact(path, FEATURES)
    cells = _cells(result.output)
    assert f"{path} (features v1)" in " ".join(result.output.split())
    assert cells["fingerprint"] == [artifact.provenance.fingerprint] and cells["round"] == ["1"]
    model = base / "round_000" / "model.pt"
    assert cells["parent model"] == [f"{file_sha256(model)[:16]} (../round_000/model.pt)"]  # relative to the file
    for name in artifact.data:
        values = artifact[name]
        assert cells[name][:2] == [str(values.shape), str(values.dtype)], name
    assert cells["train/features"][0] == f"({len(artifact['train/camera'])}, 512)"


def test_inspect_aux_plot_draws_the_transit_histograms(base, tmp_path):
    png = tmp_path / "transit.png"
    result = invoke("inspect", base / "aux.h5", "--plot", png)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {png}"
    assert "STS transit model" in result.output and min(_png(png)) > 100
    assert [p.name for p in tmp_path.iterdir()] == ["transit.png"]


def test_inspect_clusters_montage_draws_one_cluster(base, tmp_path):
    png = tmp_path / "cluster0.png"
    result = invoke("inspect", base / "round_001" / "clusters.h5", "--montage", "0", "--out", png)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {png}" and min(_png(png)) > 0


def test_inspect_eval_ranklist_draws_the_worst_queries(base, tmp_path):
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    for png, count in ((one, "1"), (two, "2")):
        result = invoke("inspect", base / "round_001" / "eval.h5", "--ranklist", "worst", "--count", count, "--out", png)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1] == f"wrote {png}"
    assert _png(two)[1] > _png(one)[1]  # a row per query


@pytest.mark.parametrize(("file", "args", "message"), [
    ("round_001/clusters.h5", ["--plot", "{tmp}/p.png"], "--plot needs a 'aux' artifact, but {file} is a 'clusters' artifact"),
    ("round_001/eval.h5", ["--montage", "0", "--out", "{tmp}/m.png"],
     "--montage needs a 'clusters' artifact, but {file} is a 'eval' artifact"),
    ("aux.h5", ["--ranklist", "worst", "--out", "{tmp}/r.png"],
     "--ranklist needs a 'eval' artifact, but {file} is a 'aux' artifact"),
    ("round_001/clusters.h5", ["--montage", "0"], "--montage needs --out FILE.png to say where to draw"),
    ("round_001/eval.h5", ["--ranklist", "worst"], "--ranklist needs --out FILE.png to say where to draw"),
    ("config.yaml", ["--plot", "{tmp}/p.png"],
     "--plot / --montage / --ranklist need an HDF5 artifact, but {file} is a config file"),
    ("round_000/model.pt", ["--ranklist", "worst", "--out", "{tmp}/r.png"],
     "--plot / --montage / --ranklist need an HDF5 artifact, but {file} is a model file"),
], ids=["plot-on-clusters", "montage-on-eval", "ranklist-on-aux", "montage-without-out", "ranklist-without-out",
        "plot-on-config", "ranklist-on-model"])
def test_inspect_refuses_a_drawing_the_file_or_options_do_not_allow_before_printing(base, tmp_path, file, args,
                                                                                      message):
    path = base / file
    result = invoke("inspect", path, *[a.format(tmp=tmp_path) for a in args])
    refused(result, f"error: {message.format(file=path)}")
    assert list(tmp_path.iterdir()) == []


def test_inspect_refuses_a_cluster_or_query_out_of_range_before_printing(base, tmp_path):
    """Checked against the file before any table is printed: the error is the only line, nothing is drawn."""
    clusters, evaluation = base / "round_001" / "clusters.h5", base / "round_001" / "eval.h5"
    count = read_clusters(clusters).attrs["num_clusters"]
    queries = len(read_artifact(evaluation)["ap"])
    for cluster in (count, -1):
        refused(invoke("inspect", clusters, "--montage", str(cluster), "--out", tmp_path / "m.png"),
                f"error: cluster {cluster} does not exist; {clusters} has clusters 0..{count - 1}")
    refused(invoke("inspect", evaluation, "--ranklist", "worst", "--count", "0", "--out", tmp_path / "r.png"),
            "error: --count must be >= 1, got 0")
    refused(invoke("inspect", evaluation, "--ranklist", f"0,{queries}", "--out", tmp_path / "r.png"),
            f"error: --ranklist {queries} is out of range; {evaluation} has queries 0..{queries - 1}")
    assert list(tmp_path.iterdir()) == []


_HDF5 = b"\x89HDF\r\n\x1a\n"
_RECREATE = "re-create it with the stage that writes it"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("features.h5", b"", f"{{file}} is empty (0 bytes); {_RECREATE}"),
    ("notes", b"", f"{{file}} is empty (0 bytes); {_RECREATE}"),
    ("config.yaml", b"", "{file} is empty (0 bytes); write a config's sections into it (see configs/synth.yaml)"),
    ("x.h5", b"model: {arch: resnet18}\n",
     f"{{file}} is not an HDF5 file (its first bytes are not the HDF5 signature); {_RECREATE}"),
    ("X.HDF5", b"PK\x03\x04rest", f"{{file}} is not an HDF5 file (it is a zip file, like a model.pt); {_RECREATE}"),
    ("model.pt", b"model: {arch: resnet18}\n",
     f"{{file}} is not a torch zip file (its first bytes are not the zip signature torch writes); {_RECREATE}"),
    ("model.pt", _HDF5 + b"rest", f"{{file}} is not a torch zip file (it is an HDF5 file, like an .h5 artifact); {_RECREATE}"),
    ("config.yml", _HDF5 + b"rest",
     "{file} is not a config YAML (it is an HDF5 file, like an .h5 artifact); give a config .yaml, or name the file for "
     "what it is"),
    ("notes.txt", b"hello\n", "{file} is not an auxreid file: not HDF5, not a torch zip file and not a YAML mapping of "
                              "config sections; give an .h5 artifact, a model.pt or a config .yaml"),
    ("image.png", b"\x89PNG\r\n\x1a\n\xff", "{file} is not an auxreid file: not HDF5, not a torch zip file and not a "
                                             "YAML mapping of config sections; give an .h5 artifact, a model.pt or a config .yaml"),
], ids=["empty-h5", "empty-no-suffix", "empty-yaml", "text-h5", "zip-hdf5", "text-pt", "hdf5-pt", "hdf5-yml",
        "text-not-a-mapping", "png"])
def test_inspect_refuses_a_file_that_is_not_what_its_name_says(tmp_path, name, content, message):
    """A damaged artifact is refused, never shown as the default config."""
    path = tmp_path / name
    path.write_bytes(content)
    refused(invoke("inspect", path), f"error: {message.format(file=path)}")
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_inspect_reads_a_file_of_another_suffix_by_its_first_bytes(base, tmp_path):
    for source, name, shown in (("round_001/clusters.h5", "clusters.bak", "(clusters v1)"),
                                ("round_000/model.pt", "model.bak", "auxreid-model v2")):
        copy = tmp_path / name
        copy.write_bytes((base / source).read_bytes())
        result = invoke("inspect", copy)
        assert result.exit_code == 0 and shown in result.output, result.output
    config = tmp_path / "settings.txt"
    config.write_text("model: {arch: resnet18}\n")
    result = invoke("inspect", config)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{config}: a valid config (unknown keys and out-of-range values would be errors)"
    assert _cells(result.output)["arch"] == ["resnet18"]


def test_inspect_refuses_a_truncated_artifact_and_a_yaml_that_is_not_a_config(base, tmp_path):
    truncated = tmp_path / "features.h5"
    truncated.write_bytes((base / "round_001" / "features.h5").read_bytes()[:4096])
    refused(invoke("inspect", truncated), f"error: {truncated} is not a readable HDF5 file (")
    scalar = tmp_path / "notes.yaml"
    scalar.write_text("hello\n")
    refused(invoke("inspect", scalar), f"error: {scalar}: the top level must be a mapping of sections, got str")
