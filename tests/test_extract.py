"""extract: cluster-mode sampling and averaging, infer-mode averaging, bad frames, features.h5."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from helpers_frames import tiny_config, tiny_dataset
from stages.artifacts.h5 import file_sha256, read_artifact
from stages.artifacts.model_file import save_model
from stages.artifacts.schemas import FEATURES
from stages.data.frames import normalize_frames, read_frame
from stages.errors import AuxReidError
from stages.extract import extract_to_file
from stages.model.embed import cluster_sample, extract_features
from stages.model.pretrained import initial_model
from stages.progress import RecordingProgress
from stages.runtime import resolve_device
from stages.views.summaries import summarize_features as summarize


@pytest.fixture(scope="module")
def dataset(module_tmp):
    return tiny_dataset(module_tmp.mktemp("tiny"))


@pytest.fixture(scope="module")
def model():
    return initial_model(tiny_config(), num_classes=4)


def _by_hand(model, tracklet, indices, *, mode):
    """Per-frame forward of the given frames, averaged as the mode says."""
    images = torch.stack([torch.from_numpy(read_frame(tracklet.frames[i], height=32, width=16)).permute(2, 0, 1)
                          for i in indices])
    with torch.no_grad():
        f = model.eval().forward_features(normalize_frames(images, device=torch.device("cpu")))
        vectors = f if mode == "cluster" else F.normalize(model.forward_head(f)[0], dim=1)
    return vectors.double().mean(0).float().numpy()


def test_cluster_sample_runs_and_cycles_short_tracklets():
    sampled = cluster_sample(np.array([3, 1, 4, 10, 7]), seq_len=4, seed=0, round=1)
    assert sampled.dtype == np.int64 and sampled.shape == (5, 4)
    assert sampled[0].tolist() == [0, 1, 2, 0] and sampled[1].tolist() == [0, 0, 0, 0]
    assert sampled[2].tolist() == [0, 1, 2, 3]
    for row, count in zip(sampled[3:], (10, 7)):
        assert 0 <= row[0] <= count - 4 and row.tolist() == list(range(row[0], row[0] + 4))


def test_cluster_sample_depends_on_seed_and_round_only():
    counts = np.full(200, 50)
    first = cluster_sample(counts, seq_len=8, seed=0, round=1)
    np.testing.assert_array_equal(first, cluster_sample(counts.copy(), seq_len=8, seed=0, round=1))
    np.testing.assert_array_equal(first[:10], cluster_sample(counts[:10], seq_len=8, seed=0, round=1))
    assert (first != cluster_sample(counts, seq_len=8, seed=0, round=2)).any()
    assert (first != cluster_sample(counts, seq_len=8, seed=1, round=1)).any()
    assert first[:, 0].min() == 0 and first[:, 0].max() == 42


def test_extract_features_cluster_mode_deterministic_raw_average(dataset, model):
    config = tiny_config()
    out = extract_features(config, dataset, "train", model, mode="cluster", round=2)
    again = extract_features(config, dataset, "train", model, mode="cluster", round=2)
    np.testing.assert_array_equal(out["features"], again["features"])
    np.testing.assert_array_equal(out["sampled_frames"], cluster_sample(np.array([5, 3, 9, 1]), seq_len=4, seed=3, round=2))
    assert out["features"].dtype == np.float32 and out["features"].shape == (4, 512)
    assert out["frames_used"].tolist() == [4, 4, 4, 4] and out["num_frames"].tolist() == [5, 3, 9, 1]
    assert out["tracklet_index"].tolist() == [0, 1, 2, 3] and out["camera"].tolist() == [0, 1, 2, 0]
    assert out["person_id"].tolist() == [0, 1, 0, 1] and out["bad_frames"].size == 0
    for i, tracklet in enumerate(dataset.train):
        expected = _by_hand(model, tracklet, out["sampled_frames"][i], mode="cluster")
        np.testing.assert_allclose(out["features"][i], expected, rtol=1e-4, atol=1e-5)


def test_extract_features_infer_mode_equals_average_of_normalised_frames(dataset, model):
    out = extract_features(tiny_config(), dataset, "query", model, mode="infer", round=0)
    assert "sampled_frames" not in out and out["frames_used"].tolist() == [5, 3, 9, 1]
    for i, tracklet in enumerate(dataset.query):
        expected = _by_hand(model, tracklet, range(len(tracklet.frames)), mode="infer")
        np.testing.assert_allclose(out["features"][i], expected, rtol=1e-4, atol=1e-5)
    norms = np.linalg.norm(out["features"], axis=1)
    assert norms[3] == pytest.approx(1.0, abs=1e-5) and (norms[:3] < 1.0).all()


def test_extract_features_chunking_and_workers_do_not_change_results(dataset, model):
    base = extract_features(tiny_config(), dataset, "gallery", model, mode="infer", round=0)
    other = extract_features(tiny_config(infer_chunk=7), dataset, "gallery", model, mode="infer", round=0)
    np.testing.assert_allclose(base["features"], other["features"], rtol=1e-4, atol=1e-5)
    workers = tiny_config(cluster_batch=3)
    workers.data.num_workers = 2
    a = extract_features(tiny_config(), dataset, "gallery", model, mode="cluster", round=1)
    b = extract_features(workers, dataset, "gallery", model, mode="cluster", round=1)
    np.testing.assert_allclose(a["features"], b["features"], rtol=1e-4, atol=1e-5)


def test_extract_features_does_not_modify_the_model(dataset):
    network = initial_model(tiny_config(), num_classes=4).train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    extract_features(tiny_config(), dataset, "train", network, mode="infer", round=0)
    assert network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key])


def _with_broken_frame(tmp_path, counts=(3, 2)):
    data = tiny_dataset(tmp_path, counts, ext="jpg")
    path = data.train[0].frames[1]
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: len(raw) // 2])
    return data, path


def test_extract_features_corrupt_jpeg_is_an_error_naming_the_file(tmp_path, model):
    data, path = _with_broken_frame(tmp_path)
    with pytest.raises(AuxReidError) as error:
        extract_features(tiny_config(), data, "train", model, mode="infer", round=0)
    assert str(error.value) == (
        f"cannot read frame {path} (train tracklet train/t0): Truncated File Read; fix or remove the file, "
        "or skip such frames with --skip-bad-frames (extract.skip_bad_frames)"
    )


def test_extract_features_skip_bad_frames_drops_warns_and_counts(tmp_path, model):
    data, path = _with_broken_frame(tmp_path)
    progress = RecordingProgress()
    out = extract_features(tiny_config(skip_bad_frames=True), data, "train", model, mode="infer", round=0,
                           progress=progress)
    assert out["bad_frames"].tolist() == [path] and out["frames_used"].tolist() == [2, 2]
    assert progress.warnings == [f"skipping unreadable frame {path}: Truncated File Read"]
    expected = _by_hand(model, data.train[0], [0, 2], mode="infer")
    np.testing.assert_allclose(out["features"][0], expected, rtol=1e-4, atol=1e-5)
    cluster = extract_features(tiny_config(skip_bad_frames=True), data, "train", model, mode="cluster", round=1)
    assert cluster["sampled_frames"][0].tolist() == [0, 1, 2, 0] and cluster["frames_used"].tolist() == [3, 4]


def test_extract_features_tracklet_without_readable_frames_is_an_error(tmp_path, model):
    data, path = _with_broken_frame(tmp_path, counts=(2, 1))
    only = data.train[1].frames[0]
    raw = open(only, "rb").read()
    open(only, "wb").write(raw[:20])
    with pytest.raises(AuxReidError, match=r"^train tracklet\(s\) train/t1 have no readable frames left after skipping"):
        extract_features(tiny_config(skip_bad_frames=True), data, "train", model, mode="infer", round=0)


def test_extract_features_bad_arguments(dataset, model):
    with pytest.raises(AuxReidError, match=r"^unknown split 'test'; choose one of train, query, gallery$"):
        extract_features(tiny_config(), dataset, "test", model, mode="infer", round=0)
    with pytest.raises(AuxReidError, match=r"^unknown extract mode 'fast'; choose one of cluster, infer$"):
        extract_features(tiny_config(), dataset, "train", model, mode="fast", round=0)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(AuxReidError, match=r"^device 'cuda' was asked for but CUDA is not available here"):
            resolve_device("cuda")
    with pytest.raises(AuxReidError, match=r"^unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_run_extract_artifact_round_trips_with_provenance(tmp_path, dataset, model):
    config = tiny_config()
    model_path = save_model(tmp_path / "round_001" / "model.pt", student=model, teacher=model, config=config,
                            round=1, step=5)
    out = extract_to_file(config, split=["query", "gallery"], mode="infer", model_path=model_path,
                      out_path=tmp_path / "round_001" / "qg.h5", dataset=dataset)
    artifact = read_artifact(out, FEATURES, fingerprint=dataset.fingerprint, round=1)
    assert artifact.provenance.parents == {"model": file_sha256(model_path)}
    assert artifact.provenance.dataset == "tiny" and "cluster_seq_len: 4" in artifact.provenance.config_yaml
    assert artifact.attrs["mode"] == "infer" and artifact.attrs["bad_frames_skipped"] == 0
    direct = extract_features(config, dataset, "gallery", model, mode="infer", round=1)
    for key in ("features", "tracklet_index", "camera", "person_id", "num_frames", "frames_used"):
        np.testing.assert_array_equal(artifact[f"gallery/{key}"], direct[key])
    assert "train/features" not in artifact
    cluster = extract_to_file(config, split="train", mode="cluster", model_path=model_path,
                          out_path=tmp_path / "features.h5", dataset=dataset)
    train = read_artifact(cluster, FEATURES, round=2)
    assert train["train/sampled_frames"].shape == (4, 4)
    sections = dict(summarize(train))
    assert dict(sections["train features"])["tracklets x dim"] == "4 x 512"


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("mode", ["cluster", "infer"])
def test_extract_amp_and_channels_last_on_the_cpu_agree_with_fp32(dataset, model, amp, mode):
    """The CUDA branches (autocast, NHWC) run on the CPU too: features within cosine 0.999 of fp32 contiguous."""
    exact = extract_features(tiny_config(amp="off", channels_last=False), dataset, "query", model, mode=mode, round=0)
    nhwc = extract_features(tiny_config(amp="off", channels_last=True), dataset, "query", model, mode=mode, round=0)
    mixed = extract_features(tiny_config(amp=amp, channels_last=True), dataset, "query", model, mode=mode, round=0)
    np.testing.assert_allclose(nhwc["features"], exact["features"], rtol=1e-4, atol=1e-5)
    assert mixed["features"].dtype == np.float32 and np.isfinite(mixed["features"]).all()
    assert _cosine(mixed["features"], exact["features"]).min() >= 0.999
    assert not np.array_equal(mixed["features"], exact["features"])  # autocast did run


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_extract_features_cuda_matches_cpu(dataset, model):
    config = tiny_config(amp="off")
    cpu = extract_features(config, dataset, "query", model, mode="infer", round=0, device="cpu")
    gpu = extract_features(config, dataset, "query", model, mode="infer", round=0, device="cuda")
    cosine = (cpu["features"] * gpu["features"]).sum(1) / (
        np.linalg.norm(cpu["features"], axis=1) * np.linalg.norm(gpu["features"], axis=1))
    assert cosine.min() >= 0.999
    amp = extract_features(tiny_config(amp="bf16"), dataset, "query", model, mode="cluster", round=0, device="cuda")
    assert amp["features"].dtype == np.float32 and np.isfinite(amp["features"]).all()


def _extract_rank(rank: int, world: int, port: int, folder: str, dataset, model_path: str) -> None:
    import os

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import stages.extract

    config = tiny_config(skip_bad_frames=True)
    sliced, real = [], stages.extract.extract_features
    stages.extract.extract_features = lambda *a, **kw: sliced.append(kw["rows"]) or real(*a, **kw)
    extract_to_file(config, split="train", mode="cluster", model_path=model_path,
                    out_path=f"{folder}/features.h5", dataset=dataset)
    extract_to_file(config, split=["query", "gallery"], mode="infer", model_path=model_path,
                    out_path=f"{folder}/qg.h5", dataset=dataset)
    torch.distributed.destroy_process_group()
    assert sliced == [[(0, 3)], [(3, 7)]][rank] * 3  # this rank's tracklets of each split, not the whole


def test_two_gloo_ranks_extract_slices_that_make_the_whole_file(tmp_path, module_tmp, model):
    import socket

    import torch.multiprocessing as mp

    # Seven tracklets: ranks of 3 and 4, infer chunks of 4 frames that straddle tracklets, one bad frame.
    dataset = tiny_dataset(module_tmp.mktemp("sharded"), (5, 3, 9, 1, 6, 2, 4))
    bad = dataset.split("gallery")[4].frames[2]
    with open(bad, "wb") as file:
        file.write(b"not an image")
    config = tiny_config(skip_bad_frames=True)
    torch.set_num_threads(1)
    model_path = save_model(tmp_path / "round_001" / "model.pt", student=model, teacher=model, config=config,
                            round=1, step=5)
    one = tmp_path / "one"
    extract_to_file(config, split="train", mode="cluster", model_path=model_path, out_path=one / "features.h5",
                    dataset=dataset)
    extract_to_file(config, split=["query", "gallery"], mode="infer", model_path=model_path, out_path=one / "qg.h5",
                    dataset=dataset)
    two = tmp_path / "two"
    two.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_extract_rank, args=(2, port, str(two), dataset, str(model_path)), nprocs=2, join=True)
    assert sorted(p.name for p in two.iterdir()) == ["features.h5", "qg.h5"]
    for name in ("features.h5", "qg.h5"):
        whole, sharded = read_artifact(one / name, FEATURES), read_artifact(two / name, FEATURES)
        assert sorted(sharded.data) == sorted(whole.data)
        for key, value in whole.data.items():
            if key.endswith("/features"):
                np.testing.assert_allclose(sharded[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(sharded[key], value, err_msg=key)
    assert read_artifact(two / "qg.h5", FEATURES)["gallery/bad_frames"].tolist() == [bad]
