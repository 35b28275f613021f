"""Tests for stages/evaluate.py and stages/views/ranklist.py: eval.h5 from saved features or a model, aux terms."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages.artifacts.h5 import make_provenance, read_artifact, write_artifact
from stages.artifacts.schemas import FEATURES
from stages.config import Config, EvaluateConfig, load_config
from stages.data import load_dataset
from stages.errors import AuxReidError
from stages.evaluate import AuxTerms, evaluate_to_file, final_distance
from stages.synth import run_synth
from stages.views.summaries import summarize_eval as summarize

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _columns(features, ids, cams, index=None):
    n = len(features)
    return {
        "features": np.asarray(features, dtype=np.float32),
        "tracklet_index": np.arange(n, dtype=np.int64) if index is None else index,
        "camera": np.asarray(cams, dtype=np.int64),
        "person_id": np.asarray(ids, dtype=np.int64),
        "num_frames": np.ones(n, dtype=np.int64),
    }


def _write_features(path, splits, *, dataset="ref", fingerprint="f" * 16, round=2, config=None):
    data = {f"{split}/{key}": value for split, cols in splits.items() for key, value in cols.items()}
    provenance = make_provenance(FEATURES, dataset=dataset, fingerprint=fingerprint, round=round, config=config)
    return write_artifact(path, provenance, data, attrs={"mode": "infer", "bad_frames_skipped": 0})


def _plain_config(**evaluate):
    config = Config()
    config.evaluate = EvaluateConfig(toc=False, scp=False, sts=False, **evaluate)
    return config


@pytest.fixture
def reference_features(reference, tmp_path):
    return _write_features(tmp_path / "features.h5", {
        "query": _columns(reference["query_emb"], reference["qid"], reference["qcam"]),
        "gallery": _columns(reference["gallery_emb"], reference["gid"], reference["gcam"]),
    })


def test_run_evaluate_reference_embeddings_give_reference_numbers(reference, reference_features, tmp_path):
    out = evaluate_to_file(_plain_config(), features_path=reference_features, out_path=tmp_path / "eval.h5")
    artifact = read_artifact(out)
    assert abs(float(artifact["metrics/mAP"]) - float(reference["mAP"])) <= 1e-6
    np.testing.assert_allclose(artifact["metrics/cmc"], reference["cmc"], atol=1e-6, rtol=0)
    assert artifact["topk_index"].shape == (120, 100) and artifact.provenance.round == 2
    record = json.loads((tmp_path / "eval.json").read_text())
    assert record["rank1"] == pytest.approx(float(reference["cmc"][0]), abs=1e-12)
    assert record["num_skipped_queries"] == 0


def test_run_evaluate_rerun_from_eval_h5_is_identical(reference_features, tmp_path):
    first = read_artifact(evaluate_to_file(_plain_config(), features_path=reference_features, out_path=tmp_path / "a.h5"))
    again = read_artifact(evaluate_to_file(_plain_config(), features_path=first.path, out_path=tmp_path / "b.h5"))
    for key in ("metrics/mAP", "metrics/cmc", "metrics/mINP", "ap", "topk_index", "topk_distance"):
        np.testing.assert_array_equal(again[key], first[key])


def test_run_evaluate_rerank_gives_reference_rerank_metrics(reference, reference_features, tmp_path):
    artifact = read_artifact(evaluate_to_file(_plain_config(rerank=True), features_path=reference_features,
                                          out_path=tmp_path / "eval.h5"))
    assert abs(float(artifact["metrics/mAP"]) - float(reference["rerank_mAP"])) <= 1e-6
    np.testing.assert_allclose(artifact["metrics/cmc"], reference["rerank_cmc"], atol=1e-6, rtol=0)
    assert abs(float(artifact["plain/mAP"]) - float(reference["mAP"])) <= 1e-6


def test_run_evaluate_missing_gallery_group_raises(reference, tmp_path):
    path = _write_features(tmp_path / "q.h5", {"query": _columns(reference["query_emb"], reference["qid"], reference["qcam"])})
    with pytest.raises(AuxReidError, match=r"has no 'gallery' features \(gallery/features, tracklet_index"):
        evaluate_to_file(_plain_config(), features_path=path, out_path=tmp_path / "eval.h5")
    assert not (tmp_path / "eval.h5").exists()


def test_run_evaluate_length_mismatch_raises(tmp_path):
    query = _columns(np.eye(2), [1, 2], [0, 0])
    query["person_id"] = np.array([1, 2, 3])
    path = _write_features(tmp_path / "f.h5", {"query": query, "gallery": _columns(np.eye(2), [1, 2], [1, 1])})
    with pytest.raises(AuxReidError, match=r"query/person_id has shape \(3,\) but query/features has 2 rows"):
        evaluate_to_file(_plain_config(), features_path=path, out_path=tmp_path / "eval.h5")


def test_run_evaluate_query_without_match_is_skipped_and_counted(tmp_path):
    path = _write_features(tmp_path / "f.h5", {
        "query": _columns(np.eye(3)[:2], [1, 5], [0, 0]),
        "gallery": _columns(np.eye(3), [1, 5, 9], [1, 0, 1]),  # id 5 only in the query's own camera
    })
    artifact = read_artifact(evaluate_to_file(_plain_config(), features_path=path, out_path=tmp_path / "eval.h5"))
    assert (artifact.attrs["num_valid_queries"], artifact.attrs["num_skipped_queries"]) == (1, 1)
    assert np.isnan(artifact["ap"][1]) and float(artifact["metrics/mAP"]) == 1.0


def test_run_evaluate_everything_invalid_raises(tmp_path):
    path = _write_features(tmp_path / "f.h5", {
        "query": _columns(np.eye(2), [1, 2], [0, 0]), "gallery": _columns(np.eye(2), [3, 4], [1, 1]),
    })
    with pytest.raises(AuxReidError, match="none of the 2 queries has a correct match"):
        evaluate_to_file(_plain_config(), features_path=path, out_path=tmp_path / "eval.h5")
    assert not (tmp_path / "eval.h5").exists() and not (tmp_path / "eval.json").exists()


def test_run_evaluate_toc_without_aux_raises(reference_features, tmp_path):
    config = _plain_config()
    config.evaluate.toc = True
    with pytest.raises(AuxReidError, match=r"evaluate.toc (and evaluate.sts )?needs? aux.h5; pass --aux aux.h5"):
        evaluate_to_file(config, features_path=reference_features, out_path=tmp_path / "eval.h5")


def test_final_distance_applies_terms_in_order():
    query = _columns(np.zeros((1, 2)), [1], [0])
    gallery = _columns(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), [1, 1, 2], [0, 1, 0])
    aux = AuxTerms(overlap_pairs=np.array([[0, 2]]), sts_factor=np.array([[1.0, 2.0, 1.0]]))
    settings = EvaluateConfig(toc=True, toc_penalty=1000.0, scp=True, scp_lambda=0.5, sts=True)
    dist = final_distance(query, gallery, settings, aux=aux)
    # ((d + 1000 toc) + 0.5 same camera) x sts
    np.testing.assert_allclose(dist, [[1.5, 8.0, 1002.5]], rtol=1e-6)


@pytest.fixture(scope="module")
def synth_run(module_tmp):
    """A small synthetic dataset, truth+noise features (noise 0.8) and an aux.h5 per STS source."""
    from stages.mine_aux import mine_aux_to_file

    base = module_tmp.mktemp("synth")
    root = run_synth(base / "data", seed=0, min_frames=2, max_frames=3)
    config = load_config(CONFIGS / "synth.yaml", [f"data.root={root}"])
    dataset = load_dataset(config.data)
    rng = np.random.default_rng(0)
    ids = np.concatenate([dataset.arrays(s)["person_id"] for s in ("train", "query", "gallery")])
    centres, camera_shift = rng.normal(size=(ids.max() + 1, 16)), 0.8 * rng.normal(size=(dataset.num_cameras, 16))
    splits = {}
    for split in ("train", "query", "gallery"):
        cols = dataset.arrays(split)
        raw = centres[cols["person_id"]] + camera_shift[cols["camera"]] + 0.8 * rng.normal(size=(len(cols["camera"]), 16))
        splits[split] = _columns(raw / np.linalg.norm(raw, axis=1, keepdims=True), cols["person_id"], cols["camera"])
    features = _write_features(base / "features.h5", splits, dataset=dataset.name, fingerprint=dataset.fingerprint,
                               round=1, config=config)
    aux = {}
    for source in ("oracle", "appearance"):
        config.aux.sts_source = source
        aux[source] = mine_aux_to_file(config, output=base / f"aux_{source}.h5", dataset=dataset,
                                   features=features if source == "appearance" else None)
    return config, features, aux, base


@pytest.mark.parametrize("source", ["oracle", "appearance"])
def test_run_evaluate_aux_raises_map_on_synthetic(synth_run, source):
    config, features, aux, base = synth_run
    config.evaluate = EvaluateConfig(toc=True, scp=True, sts=True)
    artifact = read_artifact(evaluate_to_file(config, features_path=features, aux_path=aux[source],
                                          out_path=base / f"eval_{source}.h5"))
    plain, with_aux = float(artifact["plain/mAP"]), float(artifact["metrics/mAP"])
    assert plain == pytest.approx(0.2701, abs=1e-4)
    assert with_aux > plain + 0.02
    assert (artifact.attrs["toc"], artifact.attrs["scp"], artifact.attrs["sts"]) == (True, True, True)


def test_summarize_lists_metrics(reference_features, tmp_path):
    config = _plain_config(rerank=True)
    sections = dict(summarize(read_artifact(evaluate_to_file(config, features_path=reference_features,
                                                         out_path=tmp_path / "eval.h5"))))
    assert dict(sections["metrics"])["mAP"] == "0.6764"
    assert dict(sections["plain squared Euclidean distance"])["mAP"] == "0.4917"
    assert dict(sections["evaluation"])["queries valid / skipped"] == "120 / 0"


def test_ranklist_draws_worst_queries_then_chosen_ones(synth_run):
    from stages.views.ranklist import CAPTION_LINES, LINE, RANKLIST_COUNT, ranklist

    config, features, aux, base = synth_run
    config.evaluate = EvaluateConfig(toc=False, scp=False, sts=False)
    artifact = read_artifact(evaluate_to_file(config, features_path=features, out_path=base / "eval_plain.h5"))
    row_height = LINE + 136 + CAPTION_LINES * LINE + 12  # caption line, bordered tile, tile captions, gaps
    with Image.open(ranklist(artifact, base / "worst.png")) as image:
        assert image.size[1] == LINE + 6 + RANKLIST_COUNT * row_height
    out = ranklist(artifact, base / "rank.png", queries=[0])
    with Image.open(out) as image:
        assert image.size == (13 * 72 + 14 * 6 + 18, LINE + 6 + row_height)  # 13 bordered tiles, gaps, query gap
        first_gallery_border = np.array(image)[LINE + 6 + LINE + 8, 6 + 3 * 78 + 18 + 2]
    assert tuple(first_gallery_border) in {(40, 170, 60), (210, 40, 40), (150, 150, 150)}


def test_ranklist_without_images_raises(reference_features, tmp_path):
    from stages.views.ranklist import ranklist

    artifact = read_artifact(evaluate_to_file(_plain_config(), features_path=reference_features,
                                          out_path=tmp_path / "eval.h5"))
    with pytest.raises(AuxReidError, match="the rank list needs the dataset's images, but loading them failed: "):
        ranklist(artifact, tmp_path / "rank.png", queries=[0])
    with pytest.raises(AuxReidError, match=r"--ranklist 500 is out of range; .* has queries 0..119"):
        ranklist(artifact, tmp_path / "rank.png", queries=[500])
    from typer.testing import CliRunner

    from auxreid_cli.main import app

    for option, message in (("worst", "the rank list needs the dataset's images"),
                            ("3,500", "--ranklist 500 is out of range"), ("x", "--ranklist takes 'worst' or query rows")):
        result = CliRunner().invoke(app, ["inspect", str(artifact.path), "--ranklist", option, "--out",
                                          str(tmp_path / "r.png")])
        assert result.exit_code == 1 and message in result.output.replace("\n", ""), result.output


def test_run_evaluate_from_model_equals_rerun_from_its_eval_h5(synth_run):
    from stages.init_run import write_initial_model

    config, features, aux, base = synth_run
    config = copy.deepcopy(config)
    config.data.height, config.data.width = 32, 16  # small frames keep the CPU forward passes quick
    config.evaluate = EvaluateConfig(toc=True, scp=True, sts=True)
    model = write_initial_model(config, base / "model.pt")
    first = read_artifact(evaluate_to_file(config, model_path=model, aux_path=aux["oracle"], out_path=base / "m1.h5"))
    again = read_artifact(evaluate_to_file(config, features_path=first.path, aux_path=aux["oracle"], out_path=base / "m2.h5"))
    assert first.attrs["source"] == "model" and again.attrs["source"] == "features"
    assert first["query/features"].shape[1] == 512
    for key in ("metrics/mAP", "metrics/cmc", "plain/mAP", "ap", "topk_index"):
        np.testing.assert_array_equal(again[key], first[key])


# --- the round's test features: kept in test_features.h5, reused while model and extract settings stay -------------


@pytest.fixture
def extractions(monkeypatch):
    """Counts the splits extracted by a model (evaluate reaches extract_features only to extract)."""
    import stages.eval_features as eval_features
    import stages.model.embed as embed

    calls = []
    real = embed.extract_features

    def counted(config, dataset, split, *args, **kwargs):
        calls.append(split)
        return real(config, dataset, split, *args, **kwargs)

    monkeypatch.setattr(eval_features, "extract_features", counted)
    return calls


@pytest.fixture(scope="module")
def small_model(tiny_synth, module_tmp):
    """The tiny synthetic network at 32 x 16 pixels (quick CPU forwards), two different round-0 models, two
    aux.h5 (oracle STS at two bin widths), and a folder where the first model was evaluated once."""
    import shutil

    from stages.init_run import write_initial_model
    from stages.mine_aux import mine_aux_to_file

    base = module_tmp.mktemp("small_model")
    config = load_config(CONFIGS / "synth.yaml", [f"data.root={tiny_synth}", "data.height=32", "data.width=16",
                                                  "aux.sts_source=oracle"])
    model = write_initial_model(config, base / "model.pt")
    other_config = copy.deepcopy(config)
    other_config.seed = 1
    other = write_initial_model(other_config, base / "other_model.pt")
    aux = {"oracle": mine_aux_to_file(config, output=base / "aux.h5")}
    config.aux.sts_bin_seconds = 5.0
    aux["coarse"] = mine_aux_to_file(config, output=base / "aux_coarse.h5")
    primed = base / "primed"
    primed.mkdir()
    _evaluate_round(config, model, aux["oracle"], primed)

    def copy_primed(folder):
        for name in ("test_features.h5", "eval.h5"):
            shutil.copy(primed / name, folder / name)

    return config, model, other, aux, copy_primed


def _evaluate_round(config, model, aux, folder, name="eval.h5", **kwargs):
    return read_artifact(evaluate_to_file(config, model_path=model, aux_path=aux, out_path=folder / name, round=0,
                                      test_features_path=folder / "test_features.h5", **kwargs))


def test_test_features_are_written_then_reused_when_only_test_time_settings_or_aux_change(small_model, extractions,
                                                                                          tmp_path):
    from stages.artifacts.h5 import file_sha256

    config, model, _, aux, copy_primed = small_model
    copy_primed(tmp_path)
    first = read_artifact(tmp_path / "eval.h5")
    cache = read_artifact(tmp_path / "test_features.h5", FEATURES)
    assert cache.attrs["mode"] == "infer" and cache.provenance.parents["model"] == file_sha256(model)
    assert json.loads(cache.attrs["extract_key"]) == {
        "data.height": 32, "data.width": 16, "extract.device": "cpu", "extract.amp": "off",
        "extract.channels_last": False, "extract.skip_bad_frames": False}
    np.testing.assert_array_equal(cache["query/features"], first["query/features"])
    assert first.provenance.parents["test_features"] == file_sha256(tmp_path / "test_features.h5")
    changed = copy.deepcopy(config)
    changed.evaluate = EvaluateConfig(toc=True, scp=False, sts=True, rerank=True)
    changed.extract.infer_chunk, changed.data.num_workers = 7, 1  # change no number: reused
    again = _evaluate_round(changed, model, aux["coarse"], tmp_path, "eval2.h5")
    assert extractions == []  # nothing extracted
    assert (again.attrs["scp"], again.attrs["rerank"]) == (False, True)
    assert float(again["plain/mAP"]) == float(first["plain/mAP"])
    assert float(again["metrics/mAP"]) != float(first["metrics/mAP"])


def test_test_features_are_extracted_again_for_another_model(small_model, extractions, tmp_path):
    from stages.artifacts.h5 import file_sha256

    config, _, other, aux, copy_primed = small_model
    copy_primed(tmp_path)
    retrained = _evaluate_round(config, other, aux["oracle"], tmp_path)
    assert extractions == ["query", "gallery"]
    cache = read_artifact(tmp_path / "test_features.h5")
    assert cache.provenance.parents["model"] == file_sha256(other)
    np.testing.assert_array_equal(cache["query/features"], retrained["query/features"])


def test_a_test_features_file_of_another_dataset_is_extracted_again(small_model, extractions, tmp_path):
    config, model, _, aux, _ = small_model
    columns = _columns(np.eye(3), [1, 2, 3], [0, 1, 0])
    cache = _write_features(tmp_path / "test_features.h5", {"query": columns, "gallery": columns}, round=0)
    _evaluate_round(config, model, aux["oracle"], tmp_path)
    assert extractions == ["query", "gallery"]
    assert read_artifact(cache, FEATURES)["query/features"].shape[1] == 512


def test_reuse_problem_names_what_differs(small_model, tmp_path):
    from stages.artifacts.h5 import file_sha256
    from stages.eval_features import extract_key, reuse_problem

    config, model, other, _, copy_primed = small_model
    copy_primed(tmp_path)
    path, key = tmp_path / "test_features.h5", extract_key(config)
    fingerprint = read_artifact(path).provenance.fingerprint
    sha, other_sha = file_sha256(model), file_sha256(other)

    def problem(at=path, **changes):
        return reuse_problem(at, **{"model_sha": sha, "key": key, "fingerprint": fingerprint, "round": 0, **changes})

    assert problem() is None
    assert problem(model_sha=other_sha) == f"it was extracted with another model.pt (SHA-256 {sha[:12]}, now {other_sha[:12]})"
    assert problem(key={**key, "data.width": 24}) == "it was extracted with data.width 16 (now 24)"
    assert problem(round=3) == "it is from round 0, not round 3"
    assert problem(fingerprint="0" * 16) == (
        f"it was made from dataset 'synth' with split fingerprint {fingerprint}, not the run's {'0' * 16}")
    assert problem(tmp_path / "none.h5") == "there are none yet"
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert problem(damaged).startswith(f"{damaged} is not a readable HDF5 file")
    provenance = read_artifact(path).provenance
    write_artifact(tmp_path / "sampled.h5", provenance, {"train/features": np.eye(2)}, attrs={"mode": "cluster"})
    assert problem(tmp_path / "sampled.h5") == "it holds 'features' (cluster mode), not infer-mode features"


def test_features_given_with_another_model_are_refused(small_model, tmp_path):
    from stages.artifacts.h5 import file_sha256

    config, model, other, aux, copy_primed = small_model
    copy_primed(tmp_path)
    features = tmp_path / "test_features.h5"
    with pytest.raises(AuxReidError) as info:
        evaluate_to_file(config, features_path=features, model_path=other, aux_path=aux["oracle"],
                     out_path=tmp_path / "refused.h5")
    assert str(info.value) == (
        f"the features in {features} were extracted with a model of SHA-256 {file_sha256(model)[:12]}, and {other} "
        f"has {file_sha256(other)[:12]}; give the features that {other} extracted, or leave out --features to "
        "extract them with it")
    assert not (tmp_path / "refused.h5").exists()
    same = evaluate_to_file(config, features_path=features, model_path=model, aux_path=aux["oracle"],
                        out_path=tmp_path / "same.h5")
    assert read_artifact(same).attrs["source"] == "features"


def test_cli_run_keeps_test_features_and_re_ranks_without_extracting(tiny_synth, extractions, tmp_path):
    from typer.testing import CliRunner

    from auxreid_cli.main import app
    from stages.rundir import RunDir

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args])

    sets = [f"data.root={tiny_synth}", "data.height=32", "data.width=16", "evaluate.toc=false", "evaluate.sts=false"]
    made = invoke("init", "exp", "--config", CONFIGS / "synth.yaml", *[a for s in sets for a in ("--set", s)])
    assert made.exit_code == 0, made.output
    run = RunDir.resolve("exp")
    kept = invoke("evaluate", "exp", "--round", "0", "--extract-only")
    assert kept.exit_code == 0, kept.output
    assert f"wrote {run.test_features(0)}" in " ".join(kept.output.split()) and not run.eval(0).exists()
    assert extractions == ["query", "gallery"]
    again = invoke("evaluate", "exp", "--round", "0", "--extract-only")
    assert again.exit_code == 0 and f"reused {run.test_features(0)}" in " ".join(again.output.split())
    ranked = invoke("evaluate", "exp", "--round", "0", "--set", "evaluate.rerank=true")
    assert ranked.exit_code == 0, ranked.output
    variant = run.round_dir(0) / "variants" / "evaluate.rerank=true" / "eval.h5"  # beside the run's own files
    assert extractions == ["query", "gallery"] and read_artifact(variant).attrs["rerank"] and not run.eval(0).exists()
    columns = _columns(np.eye(3), [1, 2, 3], [0, 1, 0])  # another dataset's features, copied into the run
    _write_features(run.test_features(0), {"query": columns, "gallery": columns}, round=0)
    redone = invoke("evaluate", "exp", "--round", "0")
    assert redone.exit_code == 0, redone.output
    assert extractions == ["query", "gallery"] * 2
    assert read_artifact(run.test_features(0)).provenance.fingerprint == read_artifact(run.eval(0)).provenance.fingerprint
    wrong = invoke("evaluate", "exp", "--round", "0", "--extract-only", "--out", tmp_path / "e.h5")
    assert wrong.exit_code == 1 and wrong.output.strip() == (
        "error: --extract-only keeps the features of the round's own model in RUN/round_00R/test_features.h5; it "
        "takes no --features, --model, --aux or --out")
    missing = invoke("evaluate", "exp", "--round", "2", "--extract-only")
    assert missing.exit_code == 1 and missing.output.strip() == (
        f"error: {run.model(2)} does not exist; train round 2 first (round 0 comes from `auxreid init`)")
    explicit = invoke("evaluate", "--model", run.model(0), "--out", tmp_path / "e.h5", "--extract-only")
    assert explicit.exit_code == 1 and "--extract-only keeps a run's test features: give RUN --round R" in explicit.output
