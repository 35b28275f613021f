"""`auxreid train-round`: one round of mean-teacher training on a round's pseudo labels (Teng et al. 2022).

Reads the round's clusters.h5 (pseudo labels, centroids, RLSCE neighbour map) and the previous
round's model.pt; writes this round's model.pt (student, teacher, optimizer state, round, global
step, provenance). Classifier rows 0..C-1 of student and teacher start from the L2-normalised
centroids; a fresh Adam runs round(iters_multiplier x C) iterations of P x K batches; the teacher
follows the student by EMA. A resumable checkpoint is written every `train.checkpoint_every`
iterations beside the output, and removed when the round's model.pt is in place.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stages.artifacts.h5 import Artifact, atomic_path, write_error
from stages.artifacts.lock import writes
from stages.artifacts.readers import read_clusters, read_model, require_clusters
from stages.config import Config, config_hash
from stages.data.base import DatasetSplit
from stages.data.clips import clip_loader
from stages.data.sampler import pk_batches
from stages.errors import AuxReidError
from stages.model.checkpoint import ModelFile, save_model, save_torch
from stages.model.weights import load_weights_only
from stages.progress import NullProgress, Progress
from stages.runtime import (
    Distributed,
    amp_dtype,
    cuda_index,
    grad_scaler,
    init_distributed,
    memory_format,
    pin_memory,
    rank_device,
    resolve_device,
)
from stages.training.loop import Augmentation, LoopState, run_loop
from stages.training.losses import LossWeights
from stages.training.optim import make_optimizer, round_iterations
from stages.training.step import ClipModel, LossSettings, NonFiniteLoss

#: Format tag of the in-round checkpoint (`model.checkpoint.pt`).
CHECKPOINT_FORMAT = "auxreid-train-checkpoint"


def checkpoint_path_for(out_path: str | Path) -> Path:
    """The resumable in-round checkpoint that belongs to a model.pt: `model.checkpoint.pt` beside it."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.checkpoint{out_path.suffix}")


def _clusters(path: Path, *, round: int, fingerprint: str, progress: Progress) -> Artifact:
    artifact = read_clusters(path, fingerprint=fingerprint, round=round, progress=progress)
    require_clusters(artifact)
    return artifact


def _previous_model(path: Path, *, round: int, fingerprint: str, progress: Progress) -> ModelFile:
    model_file = read_model(path, progress=progress)
    if model_file.round != round - 1:
        raise AuxReidError(f"{path} is from round {model_file.round}, but round {round - 1} is needed here")
    if model_file.fingerprint and model_file.fingerprint != fingerprint:
        raise AuxReidError(
            f"{path} was trained on dataset '{model_file.dataset}' with split fingerprint {model_file.fingerprint}, "
            f"but the current dataset's fingerprint is {fingerprint}; it belongs to another dataset or split"
        )
    if model_file.num_classes < 1:
        raise AuxReidError(f"{path} has no classifier; training needs one row per train tracklet "
                           "(start the run with `auxreid init`)")
    return model_file


def seed_classifier(model: nn.Module, centroids: torch.Tensor, source: Path) -> None:
    """Rows 0..C-1 of the classifier <- the L2-normalised centroids (cluster-mode features)."""
    weight = model.classifier.weight
    if centroids.shape[1] != weight.shape[1] or centroids.shape[0] > weight.shape[0]:
        raise AuxReidError(
            f"{source}: {centroids.shape[0]} centroids of dimension {centroids.shape[1]} do not fit the model's "
            f"classifier ({weight.shape[0]} rows of dimension {weight.shape[1]}); the clusters come from another model"
        )
    with torch.no_grad():
        weight[: centroids.shape[0]].copy_(F.normalize(centroids.float(), dim=1))


def _batch_size(batch_size: int, instances: int, *, num_clusters: int, world: int, round: int,
                progress: Progress) -> int:
    """The round's batch: P = batch_size / instances identities, fewer (with a warning) when there are fewer clusters.

    Early rounds of a weak model, or data with few tracklets per person, can leave fewer clusters than
    a batch has identities; training on all of them beats stopping the loop. Under DDP the identities
    still split evenly over the ranks.
    """
    wanted = batch_size // instances
    if num_clusters >= wanted:
        return batch_size
    usable = num_clusters - num_clusters % world
    if usable < max(2, world):
        raise AuxReidError(
            f"round {round} has {num_clusters} cluster(s); a batch needs at least {max(2, world)} pseudo identities "
            "(the triplet losses need negatives); cluster with a larger eps or a smaller cluster.min_samples"
        )
    progress.warn(f"round {round} has {num_clusters} clusters, fewer than the {wanted} identities of a batch "
                  f"(train.batch_size {batch_size} / train.instances {instances}); batches hold {usable} x {instances}")
    return usable * instances


def _rlsce_k(clusters: Artifact, config: Config) -> int:
    """RLSCE's K: the one clusters.h5 was made with (its `rlsce_k`), else the config's `cluster.rlsce_k`.

    The smoothing mass per neighbour is epsilon / K with this K even when the map is narrower (fewer
    other clusters than K), as in the authors' code.
    """
    k = int(clusters.attrs.get("rlsce_k", config.cluster.rlsce_k))
    width = int(clusters["nearest_clusters"].shape[1])
    if width > k:
        raise AuxReidError(
            f"{clusters.path}: its RLSCE map has {width} neighbours per cluster, more than cluster.rlsce_k = {k}; "
            "re-run `auxreid cluster` with this config"
        )
    return k


def _loss_settings(config: Config, *, rlsce_k: int) -> LossSettings:
    train = config.train
    return LossSettings(
        id_loss=train.id_loss, triplet=train.triplet, epsilon=train.label_smoothing,
        watl_margin=train.watl_margin, watl_lambda=train.watl_lambda,
        weights=LossWeights(id=train.weight_id, triplet=train.weight_triplet, soft_id=train.weight_soft_id,
                            soft_triplet=train.weight_soft_triplet),
        rlsce_k=rlsce_k,
    )


def _save_checkpoint(path: Path, *, student, teacher, optimizer, scaler, state: LoopState, round: int,
                     iterations: int, hash_: str) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT, "round": round, "iteration": state.iteration, "step": state.step,
        "iterations": iterations, "config_hash": hash_,
        "student": student.model.state_dict(), "teacher": teacher.model.state_dict(),
        "optimizer": optimizer.state_dict(), "loss_sums": dict(state.loss_sums),
        "precision_sum": state.precision_sum, "precision_count": state.precision_count,
        "frames": state.frames, "seconds": state.seconds, "wait_seconds": state.wait_seconds,
    }
    if scaler is not None:
        payload["grad_scaler"] = scaler.state_dict()
    save_torch(payload, path)


def _resume(path: Path, *, round: int, iterations: int, hash_: str, student, teacher, optimizer, scaler,
            state: LoopState) -> None:
    saved = load_weights_only(path)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise AuxReidError(f"{path} is not a train-round checkpoint; delete it and run without --resume")
    found = (saved["round"], saved["iterations"], saved["config_hash"])
    if found != (round, iterations, hash_):
        raise AuxReidError(
            f"{path} is from round {saved['round']} with {saved['iterations']} iterations and config {saved['config_hash']}, "
            f"but this run is round {round} with {iterations} iterations and config {hash_}; "
            "run without --resume to start the round over"
        )
    student.model.load_state_dict(saved["student"])
    teacher.model.load_state_dict(saved["teacher"])
    optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and "grad_scaler" in saved:
        scaler.load_state_dict(saved["grad_scaler"])
    state.iteration, state.step = int(saved["iteration"]), int(saved["step"])
    state.loss_sums = {k: float(v) for k, v in saved["loss_sums"].items()}
    state.precision_sum, state.precision_count = float(saved["precision_sum"]), int(saved["precision_count"])
    state.frames, state.seconds = int(saved["frames"]), float(saved["seconds"])
    state.wait_seconds = float(saved["wait_seconds"])


class MetricsLog:
    """Appends one JSON object a line to RUN/metrics.jsonl (rank 0 only; nothing without a path)."""

    def __init__(self, path: Path | None, *, enabled: bool) -> None:
        self.path = path if enabled else None

    def start_round(self, round: int, *, from_iteration: int) -> None:
        """Forget what an earlier attempt at this round logged past `from_iteration`, so lines never repeat.

        A rerun starts from 0; a resumed round from its checkpoint. Other rounds' lines are kept; a line
        that is not JSON (a write cut short by a kill) is dropped. The file is rewritten atomically.
        """
        if self.path is None or not self.path.is_file():
            return
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            stale = record is None or (isinstance(record, dict) and record.get("round") == round
                                       and (record.get("kind") == "round" or record.get("iteration", 0) > from_iteration))
            dropped += stale
            if not stale:
                kept.append(line)
        if dropped:
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=False) + "\n")
        except OSError as exc:
            raise write_error(self.path, exc) from None


@writes(lambda out_path, metrics_path, **_: (out_path, checkpoint_path_for(out_path), metrics_path))
def run_train_round(
    config: Config,
    *,
    clusters_path: str | Path,
    model_path: str | Path,
    out_path: str | Path,
    round: int,
    metrics_path: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: Progress | None = None,
    dataset: DatasetSplit | None = None,
) -> Path:
    """Train one round and write its model.pt (rank 0 under torchrun).

    Args:
        config: the run's config (`train`, `data`, `seed`).
        clusters_path: this round's clusters.h5.
        model_path: the previous round's model.pt.
        out_path: this round's model.pt; its checkpoint lives beside it (`checkpoint_path_for`).
        round: the round trained (>= 1).
        metrics_path: RUN/metrics.jsonl to append iteration and round records to, or None.
        resume: continue from the checkpoint when there is one.
        device: overrides `train.device`.
        progress: progress sink.
        dataset: an already loaded dataset (default: load_dataset(config.data)).

    Returns:
        out_path.

    Raises:
        AuxReidError: inputs that do not fit, a non-finite loss (nothing is written then).
    """
    from stages.data import load_dataset

    progress = progress or NullProgress()
    train = config.train
    clusters_path, model_path, out_path = Path(clusters_path), Path(model_path), Path(out_path)
    compute = resolve_device(device or train.device)
    launch: Distributed = init_distributed(compute)
    compute = rank_device(compute, launch)
    dataset = dataset if dataset is not None else load_dataset(config.data)
    clusters = _clusters(clusters_path, round=round, fingerprint=dataset.fingerprint, progress=progress)
    model_file = _previous_model(model_path, round=round, fingerprint=dataset.fingerprint, progress=progress)

    labels_all = clusters["labels"].astype(np.int64)
    tracklet_index = clusters.data.get("tracklet_index", np.arange(len(labels_all))).astype(np.int64)
    labelled = np.flatnonzero(labels_all >= 0)
    rows = tracklet_index[labelled]
    tracklets = [dataset.train[i] for i in rows]
    labels = labels_all[labelled]
    cameras = np.array([t.camera for t in tracklets], dtype=np.int64)
    ids = np.array([t.person_id for t in tracklets], dtype=np.int64)
    true_ids = ids if ids.size and (ids >= 0).all() else None
    num_clusters = int(clusters["centroids"].shape[0])
    centroids = torch.from_numpy(np.ascontiguousarray(clusters["centroids"]))
    nearest = torch.from_numpy(clusters["nearest_clusters"].astype(np.int64)) if train.id_loss == "rlsce" else None
    losses = _loss_settings(config, rlsce_k=_rlsce_k(clusters, config))

    student_net, teacher_net = model_file.build("student"), model_file.build("teacher")
    for network in (student_net, teacher_net):
        seed_classifier(network, centroids, clusters_path)
    channels_last = train.channels_last
    memory = memory_format(channels_last)
    student = ClipModel(student_net.to(compute, memory_format=memory), bn_chunk=train.bn_chunk,
                        num_clusters=num_clusters).train()
    teacher = ClipModel(teacher_net.to(compute, memory_format=memory), bn_chunk=train.bn_chunk,
                        num_clusters=num_clusters).train()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    optimizer = make_optimizer(student, train, round=round)
    dtype = amp_dtype(train.amp)
    scaler = grad_scaler(compute, dtype)
    forward = None
    if launch.world > 1:
        with warnings.catch_warnings():  # broadcast_buffers=False is the documented way to keep rank-local buffers
            warnings.simplefilter("ignore", FutureWarning)
            forward = nn.parallel.DistributedDataParallel(
                student, device_ids=None if cuda_index(compute) is None else [cuda_index(compute)],
                broadcast_buffers=False)

    iterations = round_iterations(train, num_clusters=num_clusters)
    batch_size = _batch_size(train.batch_size, train.instances, num_clusters=num_clusters, world=launch.world,
                             round=round, progress=progress)
    batches = pk_batches(labels, cameras, num_instances=train.instances, batch_size=batch_size,
                         iterations=iterations, seed=config.seed, round=round)
    state = LoopState(iteration=0, step=model_file.step)
    checkpoint = checkpoint_path_for(out_path)
    hash_ = config_hash(config)
    if resume and checkpoint.is_file():
        _resume(checkpoint, round=round, iterations=iterations, hash_=hash_, student=student, teacher=teacher,
                optimizer=optimizer, scaler=scaler, state=state)
    elif resume:
        progress.warn(f"--resume: no checkpoint {checkpoint}; training round {round} from its start")
    elif checkpoint.is_file() and launch.is_main:
        progress.warn(f"{checkpoint} from an interrupted run is ignored (pass --resume to continue it)")

    log = MetricsLog(Path(metrics_path) if metrics_path else None, enabled=launch.is_main)
    log.start_round(round, from_iteration=state.iteration)
    loader = clip_loader(
        tracklets, batches, seq_len=train.train_seq_len, seed=config.seed, round=round,
        height=config.data.height, width=config.data.width, num_workers=config.data.num_workers,
        pin_memory=pin_memory(compute), start_iteration=state.iteration, rank=launch.rank, world=launch.world,
        num_instances=train.instances,
    )
    augmentation = Augmentation(flip=train.flip, pad=train.pad if train.pad_crop else 0,
                                random_erasing=train.random_erasing, channels_last=channels_last,
                                per=train.augment_per)

    def on_iteration(current: LoopState, record: dict) -> None:
        if current.iteration % train.log_every == 0 or current.iteration == iterations:
            log.write({"kind": "iteration", "round": round, **record})
        if (launch.is_main and train.checkpoint_every and current.iteration % train.checkpoint_every == 0
                and current.iteration < iterations):
            _save_checkpoint(checkpoint, student=student, teacher=teacher, optimizer=optimizer, scaler=scaler,
                             state=current, round=round, iterations=iterations, hash_=hash_)

    progress.start("train", total=iterations)
    progress.advance("train", state.iteration)
    started = time.perf_counter()
    try:
        state = run_loop(
            loader, student=student, teacher=teacher, optimizer=optimizer, state=state, iterations=iterations,
            batches=batches, labels=labels, true_ids=true_ids, nearest=nearest, losses=losses,
            augmentation=augmentation, seed=config.seed, round=round, ema_max=train.ema_max, device=compute,
            rank=launch.rank, world=launch.world, amp_dtype=dtype, scaler=scaler, forward=forward, progress=progress,
            on_iteration=on_iteration,
        )
    except NonFiniteLoss as error:
        raise AuxReidError(
            f"round {round} iteration {state.iteration + 1}: loss term '{error.term}' is {error.value}; training "
            f"stopped and {out_path} was not written (earlier files are intact); lower train.lr or check the "
            "clusters and the model"
        ) from None
    progress.done("train", f"{iterations} iterations")

    done_iterations = max(iterations, 1)
    mean_losses = {k: v / done_iterations for k, v in state.loss_sums.items()}
    summary = {"num_clusters": num_clusters, "iterations": iterations, "labelled_tracklets": int(labelled.size),
               "mean_losses": mean_losses, "world_size": launch.world}
    if launch.is_main:
        save_model(
            out_path, student=student.model, teacher=teacher.model, config=config, round=round, step=state.step,
            dataset=dataset.name, fingerprint=dataset.fingerprint,
            parents={"clusters": clusters_path, "model": model_path},
            extra={"optimizer": optimizer.state_dict(), **summary},
        )
        checkpoint.unlink(missing_ok=True)
        round_record = {"kind": "round", "round": round, "clusters": num_clusters, "iterations": iterations,
                        "labelled_tracklets": int(labelled.size), "losses": mean_losses,
                        "seconds": time.perf_counter() - started,
                        "frames_per_s": state.frames / max(state.seconds, 1e-9),
                        "loader_wait_share": state.wait_seconds / max(state.seconds, 1e-9), "device": compute.type,
                        "world_size": launch.world}
        if state.precision_count:
            round_record["pseudo_label_precision"] = state.precision_sum / state.precision_count
        log.write(round_record)
    if launch.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return out_path

