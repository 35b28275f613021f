"""`auxreid status` through the CLI on a real trained run: every cell checked against the files' own provenance,
stale, misplaced and unreadable files, and the refusals.

Listing a hand-made run, a remade features.h5 flagging its clusters and a missing run are in tests/test_status.py.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone

import pytest

from stages.artifacts.h5 import read_provenance
from stages.artifacts.model_file import read_model_file
from test_cli_train_round import built_run, invoke, refused, run_copy, snapshot, usage_error


@pytest.fixture(scope="module")
def base(module_tmp, tiny_synth):
    return built_run(module_tmp.factory, tiny_synth)


def _rows(output: str) -> dict[tuple[str, str], list[str]]:
    """(table title, artifact) -> the other cells: exists, round, schema, created, stale; a cell wrapped over more
    lines is joined back with single spaces."""
    rows, group, last = {}, None, None
    for line in output.splitlines():
        if re.fullmatch(r"run|round_\d{3,}", line.strip()):
            group = line.strip()
        elif line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            if cells[0]:
                last = rows[(group, cells[0])] = cells[1:]
            else:
                last[:] = [f"{old} {more}".strip() for old, more in zip(last, cells[1:])]
    return rows


def _utc(stamp: str) -> str:
    return stamp.replace("T", " ").removesuffix("+00:00")


def test_status_of_a_trained_run_matches_every_files_provenance(base):
    before = snapshot(base)
    result = invoke("status", base)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"run {base} ({base})"
    rows = _rows(result.output)
    mtime = datetime.fromtimestamp((base / "config.yaml").stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    assert rows[("run", "config.yaml")] == ["yes", "", "config", _utc(mtime), "-"]
    expected = {("run", "aux.h5"): base / "aux.h5", ("round_000", "model.pt"): base / "round_000" / "model.pt",
                **{("round_001", name): base / "round_001" / name
                   for name in ("features.h5", "clusters.h5", "model.pt", "eval.h5")}}
    for key, path in expected.items():
        if path.suffix == ".pt":
            entries = read_model_file(path, mmap=True).entries
            round, schema, created = entries["round"], f"model v{entries['version']}", entries["created"]
        else:
            provenance = read_provenance(path)[0]
            round, schema = provenance.round, f"{provenance.schema} v{provenance.schema_version}"
            created = provenance.created
        stale = "-" if key == ("round_000", "model.pt") else "no"  # round 0's model has no parent
        assert rows[key] == ["yes", str(round), schema, _utc(created), stale], key
    assert rows[("round_000", "eval.h5")] == ["no", "", "", "", ""]
    existing = sum(cells[0] == "yes" for cells in rows.values())
    assert existing == len(expected) + 1 and lines[-1] == f"{existing} artifacts, none stale (-: no parent recorded)"
    assert snapshot(base) == before


def test_status_names_stale_and_misplaced_files_and_what_to_remake(base, tmp_path):
    run = run_copy(base, tmp_path)
    (run / "round_000" / "model.pt").unlink()
    (run / "round_002").mkdir()
    shutil.copy(run / "round_001" / "features.h5", run / "round_002" / "features.h5")
    shutil.copy(run / "round_001" / "features.h5", run / "round_002" / "clusters.h5")
    before = snapshot(run)
    result = invoke("status", run)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows[("round_000", "model.pt")][0] == "no"
    assert [rows[("round_001", name)][4] for name in ("features.h5", "clusters.h5", "model.pt", "eval.h5")] == [
        "model gone", "no", "model gone", "no"]
    assert rows[("round_002", "features.h5")][:3] == ["yes", "1", "features v1: records round 1 but lies in round_002/"]
    assert rows[("round_002", "clusters.h5")][:3] == [
        "yes", "1", "features v1: a 'features' artifact where a 'clusters' one belongs"]
    existing = sum(cells[0] == "yes" for cells in rows.values())
    assert result.output.splitlines()[-5:] == [
        f"2 stale and 2 unreadable or misplaced of {existing} artifacts; re-make them (then what was made from them):",
        f"  round_001/features.h5 (model round_000/model.pt is gone): auxreid extract {run} --round 1",
        f"  round_001/model.pt (model round_000/model.pt is gone): auxreid train-round {run} --round 1",
        f"  round_002/features.h5 (records round 1 but lies in round_002/; model round_000/model.pt is gone): "
        f"auxreid extract {run} --round 2",
        f"  round_002/clusters.h5 (a 'features' artifact where a 'clusters' one belongs): "
        f"auxreid cluster {run} --round 2"]
    assert snapshot(run) == before


def test_status_names_the_artifacts_a_config_yaml_edit_makes_stale(base, tmp_path):
    """evaluate.top_k decides what eval.h5 holds; evaluate.every (which rounds are evaluated) and train.rounds change
    no file; data.height decides features, model and eval alike."""
    run = run_copy(base, tmp_path)
    config = (run / "config.yaml").read_text()
    assert "  top_k: 100\n" in config and "  every: 1\n" in config and "  rounds: 2\n" in config
    (run / "config.yaml").unlink()  # copied, but replaced as an editor would
    (run / "config.yaml").write_text(config.replace("  top_k: 100\n", "  top_k: 50\n")
                                     .replace("  every: 1\n", "  every: 3\n").replace("  rounds: 2\n", "  rounds: 9\n"))
    result = invoke("status", run)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-2:] == [
        "1 stale of 7 artifacts; re-make them (then what was made from them):",
        f"  round_001/eval.h5 (evaluate.top_k 100 here, 50 in config.yaml): auxreid evaluate {run} --round 1"]
    assert _rows(result.output)[("round_001", "eval.h5")][4] == "evaluate.top_k 100 here, 50 in config.yaml"
    (run / "config.yaml").write_text(config.replace("height: 32", "height: 48"))
    result = invoke("status", run)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-5:] == [
        "4 stale of 7 artifacts; re-make them (then what was made from them):",
        f"  round_000/model.pt (data.height 32 here, 48 in config.yaml): auxreid init {run} --config CONFIG.yaml --force",
        f"  round_001/features.h5 (data.height 32 here, 48 in config.yaml): auxreid extract {run} --round 1",
        f"  round_001/model.pt (data.height 32 here, 48 in config.yaml): auxreid train-round {run} --round 1",
        f"  round_001/eval.h5 (data.height 32 here, 48 in config.yaml): auxreid evaluate {run} --round 1"]


def _unreadable_eval(base, tmp_path):
    run = run_copy(base, tmp_path)
    (run / "round_001" / "eval.h5").unlink()  # hard-linked to the base run's: replaced, not written into
    (run / "round_001" / "eval.h5").write_text("not an artifact")
    return run


def test_status_says_why_a_file_is_unreadable(base, tmp_path, monkeypatch):
    _unreadable_eval(base, tmp_path)
    monkeypatch.chdir(tmp_path)  # a short path: see the test below for a long one
    result = invoke("status", "./base")
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows[("round_001", "eval.h5")] == [
        "yes", "", "?: unreadable: base/round_001/eval.h5 is not a readable HDF5 file (Unable to synchronously open "
                   "file (file signature not found)); re-create it", "", "-"]
    assert rows[("round_001", "model.pt")][4] == "no"


def test_status_lists_an_unreadable_file_with_the_command_that_remakes_it(base, tmp_path):
    run = _unreadable_eval(base, tmp_path)
    result = invoke("status", run)
    assert result.exit_code == 0, result.output
    existing = sum(cells[0] == "yes" for cells in _rows(result.output).values())
    assert existing == 7 and result.output.splitlines()[-2:] == [
        "1 unreadable or misplaced of 7 artifacts; re-make them (then what was made from them):",
        f"  round_001/eval.h5 (unreadable: {run}/round_001/eval.h5 is not a readable HDF5 file (Unable to synchronously "
        f"open file (file signature not found)); re-create it): auxreid evaluate {run} --round 1"]


def _tables(output: str) -> list[list[str]]:
    """The lines of each table printed, top border to bottom border."""
    tables = []
    for line in output.splitlines():
        if line.startswith("┏"):
            tables.append([])
        if tables and (not tables[-1] or not tables[-1][-1].startswith("└")) and line[:1] in "┏┃┡│└":
            tables[-1].append(line)
    return tables


@pytest.mark.parametrize("width", [None, 100], ids=["log-width", "narrow-console"])
def test_status_keeps_every_column_when_a_problem_text_is_long(base, tmp_path, monkeypatch, width):
    """A long problem text (and a long stale text) wraps inside its own column; every other cell stays in place."""
    from auxreid_cli.common import console

    if width is not None:
        monkeypatch.setattr(console, "width", width)
    run = _unreadable_eval(base, tmp_path / ("deep_folder_" * 8))
    for one, other in (("aux.h5", "round_001/features.h5"), ("round_001/features.h5", "aux.h5")):
        (run / one).unlink()
        shutil.copy(base / other, run / one)  # swapped: both misplaced, and clusters.h5 stale by both parents
    result = invoke("status", run)
    assert result.exit_code == 0, result.output
    tables = _tables(result.output)
    assert len(tables) == 3 and len({len(line) for table in tables for line in table}) == 1, result.output
    assert len(tables[0][0]) <= console.width
    rows = _rows(result.output)
    model = read_model_file(run / "round_001" / "model.pt", mmap=True).entries
    assert rows[("round_001", "model.pt")] == ["yes", "1", "model v2", _utc(model["created"]), "no"]
    assert rows[("round_001", "eval.h5")][:2] + rows[("round_001", "eval.h5")][3:] == ["yes", "", "", "-"]
    problem = (f"?: unreadable: {run}/round_001/eval.h5 is not a readable HDF5 file (Unable to synchronously open file "
               "(file signature not found)); re-create it")
    assert "".join(rows[("round_001", "eval.h5")][2].split()) == "".join(problem.split())
    clusters = read_provenance(run / "round_001" / "clusters.h5")[0]
    assert rows[("round_001", "clusters.h5")] == ["yes", "1", "clusters v1", _utc(clusters.created),
                                                  "aux changed, features changed"]


def test_status_of_a_folder_without_config_lists_nothing(tmp_path):
    result = invoke("status", tmp_path)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert rows[("run", "config.yaml")] == ["no", "", "", "", ""] and rows[("run", "aux.h5")][0] == "no"
    assert result.output.splitlines()[-1] == "0 artifacts, none stale (-: no parent recorded)"


def test_status_refuses_an_unusable_run_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(invoke("status", "bad name"), "error: run name 'bad name' is not a usable run name; use letters, digits")
    assert list(tmp_path.iterdir()) == []


def test_status_without_run_is_a_usage_error():
    usage_error(invoke("status"), "Missing argument 'run'")
