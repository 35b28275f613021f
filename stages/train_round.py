"""`auxreid train-round`: one round of mean-teacher training on a round's pseudo labels (Teng et al. 2022).

Reads the round's clusters.h5 (pseudo labels, centroids, RLSCE neighbour map) and the previous
round's model.pt; writes this round's model.pt (student, teacher, optimizer state, round, global
step, provenance). The round is put together from parts, as fast-reid's trainer is: a pure plan
(`stages.training.plan`: labelled rows, batch size, iterations, batches), the mean teacher
(`stages.training.mean_teacher`: networks with classifiers seeded from the centroids, Adam, AMP, DDP),
the loop (`stages.training.loop`), and the hooks that checkpoint and log (`stages.training.hooks`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from stages.artifacts.h5 import Artifact
from stages.artifacts.lock import writes
from stages.artifacts.model_file import ModelFile, save_model
from stages.artifacts.readers import read_clusters, read_model
from stages.clustering.diagnosis import require_clusters
from stages.config import Config, config_hash
from stages.data import load_dataset
from stages.data.base import DatasetSplit
from stages.data.clips import clip_loader
from stages.errors import AuxReidError
from stages.progress import NullProgress, Progress
from stages.rundir import StageIO
from stages.runtime import Distributed, init_distributed, pin_memory, rank_device, resolve_device
from stages.training.hooks import MetricsLog, RoundCheckpoint, checkpoint_path_for, pending_records_path_for
from stages.training.loop import Augmentation, LoopState, StepSettings, run_loop
from stages.training.losses import LossWeights
from stages.training.mean_teacher import MeanTeacher, build_mean_teacher
from stages.training.plan import RoundPlan, plan_round
from stages.training.step import LossSettings, StopRound

#: The model.* settings that make the network: fixed when a model.pt is made, so a config that differs is refused
#: (`model.pretrained` only says where round 0's weights came from, which no later round reads).
NETWORK_SETTINGS = ("arch", "last_stride", "stem_relu")


def _clusters(path: Path, *, round: int, fingerprint: str, progress: Progress) -> Artifact:
    artifact = read_clusters(path, fingerprint=fingerprint, round=round, progress=progress)
    require_clusters(artifact)
    return artifact


def _previous_model(path: Path, config: Config, *, round: int, fingerprint: str, progress: Progress) -> ModelFile:
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
    _require_same_network(model_file, config)
    return model_file


def _yaml_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _require_same_network(model_file: ModelFile, config: Config) -> None:
    """Refuse a config whose network settings differ from the model.pt's.

    The network is built from the model.pt (its `arch` and its own config), so a differing setting would be
    ignored in training, and the round's model.pt would then record the config's settings for weights
    that do not have them.
    """
    made = {"arch": model_file.entries["arch"],
            **{key: getattr(model_file.config.model, key) for key in NETWORK_SETTINGS if key != "arch"}}
    wanted = {key: getattr(config.model, key) for key in NETWORK_SETTINGS}
    differ = [key for key in NETWORK_SETTINGS if made[key] != wanted[key]]
    if not differ:
        return
    also = [key for key in differ if key != "arch"]
    has = f" with {', '.join(f'model.{key}={_yaml_value(made[key])}' for key in also)}" if also else ""
    says = ", ".join(f"model.{key}={_yaml_value(wanted[key])}" for key in differ)
    raise AuxReidError(
        f"{model_file.path} is a {made['arch']}{has} but the config says {says}; a model's network is fixed when "
        "it is made: drop these model.* settings (from --set, --config or the run's config.yaml), or start a new run "
        "with them (`auxreid init`)"
    )


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


@writes(lambda out_path, metrics_path, **_: (out_path, checkpoint_path_for(out_path), metrics_path,
                                            pending_records_path_for(out_path) if metrics_path else None))
def train_to_file(
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
        out_path: this round's model.pt; its checkpoint lives beside it (`checkpoint_path_for`), and so do the
            round's records until model.pt is in place (`pending_records_path_for`).
        round: the round trained (>= 1).
        metrics_path: RUN/metrics.jsonl, whose records of this round are replaced by the new ones once
            model.pt is in place, or None.
        resume: continue from the checkpoint when there is one.
        device: overrides `train.device`.
        progress: progress sink.
        dataset: an already loaded dataset (default: load_dataset(config.data)).

    Returns:
        out_path.

    Raises:
        AuxReidError: inputs that do not fit; a non-finite or exploding loss (nothing is written then).
    """
    progress, train = progress or NullProgress(), config.train
    clusters_path, model_path, out_path = Path(clusters_path), Path(model_path), Path(out_path)
    compute = resolve_device(device or train.device)
    launch: Distributed = init_distributed(compute)
    compute = rank_device(compute, launch)
    pending = pending_records_path_for(out_path)
    if metrics_path is not None and Path(metrics_path).resolve() == pending.resolve():
        raise AuxReidError(f"--metrics {metrics_path} is where train-round keeps the round's records until {out_path} "
                           "is in place; give another metrics file")
    dataset = dataset if dataset is not None else load_dataset(config.data)
    clusters = _clusters(clusters_path, round=round, fingerprint=dataset.fingerprint, progress=progress)
    plan = plan_round(clusters, dataset, config, round=round, world=launch.world, progress=progress)
    model_file = _previous_model(model_path, config, round=round, fingerprint=dataset.fingerprint, progress=progress)
    settings = _step_settings(config, clusters, device=compute, launch=launch)
    centroids = torch.from_numpy(np.ascontiguousarray(clusters["centroids"]))
    net = build_mean_teacher(model_file, centroids, source=clusters_path, train=train, num_clusters=plan.num_clusters,
                             round=round, device=compute, world=launch.world)
    state = LoopState(iteration=0, step=model_file.step)
    checkpoint = RoundCheckpoint(checkpoint_path_for(out_path), round=round, iterations=plan.iterations,
                                 config_hash=config_hash(config), inputs={"clusters": clusters_path, "model": model_path},
                                 every=train.checkpoint_every, enabled=launch.is_main)
    checkpoint.start(net, state, resume=resume, progress=progress)
    log = MetricsLog(Path(metrics_path) if metrics_path else None, pending=pending, round=round,
                     enabled=launch.is_main)
    log.start(from_iteration=state.iteration)
    started = time.perf_counter()
    try:
        state = _train(config, plan, net, state, settings, checkpoint=checkpoint, log=log, progress=progress,
                       out_path=out_path)
    except BaseException:
        if not checkpoint.path.is_file():  # no checkpoint to resume: the records of this attempt go with it
            log.discard()
        raise
    if launch.is_main:
        save_model(out_path, student=net.student.model, teacher=net.teacher.model, config=config, round=round,
                   step=state.step, dataset=dataset.name, fingerprint=dataset.fingerprint,
                   parents={"clusters": clusters_path, "model": model_path},
                   extra={"optimizer": net.optimizer.state_dict(), **_summary(plan, state, launch.world)})
        log.commit(_round_record(plan, state, seconds=time.perf_counter() - started, device=compute,
                                 world=launch.world))
        checkpoint.remove()
    if launch.world > 1:
        dist.barrier()
    return out_path


def _step_settings(config: Config, clusters: Artifact, *, device: torch.device, launch: Distributed) -> StepSettings:
    """The losses (RLSCE's K and map from clusters.h5), augmentation and EMA cap every step of the round uses."""
    train = config.train
    nearest = (torch.from_numpy(clusters["nearest_clusters"].astype(np.int64)).to(device)
               if train.id_loss == "rlsce" else None)
    augmentation = Augmentation(flip=train.flip, pad=train.pad if train.pad_crop else 0,
                                random_erasing=train.random_erasing, channels_last=train.channels_last,
                                per=train.augment_per)
    return StepSettings(losses=_loss_settings(config, rlsce_k=_rlsce_k(clusters, config)), nearest=nearest,
                        augmentation=augmentation, seed=config.seed, ema_max=train.ema_max, device=device,
                        rank=launch.rank, world=launch.world)


def _train(config: Config, plan: RoundPlan, net: MeanTeacher, state: LoopState, settings: StepSettings, *,
           checkpoint: RoundCheckpoint, log: MetricsLog, progress: Progress, out_path: Path) -> LoopState:
    """The loop from `state.iteration` on, with its hooks; a stopped round (`StopRound`) is one line, nothing written."""
    train = config.train
    loader = clip_loader(
        plan.tracklets, plan.batches, seq_len=train.train_seq_len, seed=config.seed, round=plan.round,
        height=config.data.height, width=config.data.width, num_workers=config.data.num_workers,
        pin_memory=pin_memory(settings.device), start_iteration=state.iteration, rank=settings.rank,
        world=settings.world, num_instances=train.instances,
    )

    def on_iteration(current: LoopState, record: dict) -> None:
        if current.iteration % train.log_every == 0 or current.iteration == plan.iterations:
            log.write({"kind": "iteration", "round": plan.round, **record})
        checkpoint.after_step(net, current)

    progress.start("train", total=plan.iterations)
    progress.advance("train", state.iteration)
    try:
        state = run_loop(loader, net, plan, state, settings, progress=progress, on_iteration=on_iteration)
    except StopRound as error:
        raise AuxReidError(error.message(round=plan.round, iteration=state.iteration + 1, out=out_path)) from None
    progress.done("train", f"{plan.iterations} iterations")
    return state


def _mean_losses(plan: RoundPlan, state: LoopState) -> dict[str, float]:
    return {k: v / max(plan.iterations, 1) for k, v in state.loss_sums.items()}


def _summary(plan: RoundPlan, state: LoopState, world: int) -> dict:
    """What model.pt records of the round besides the weights."""
    return {"num_clusters": plan.num_clusters, "iterations": plan.iterations, "labelled_tracklets": len(plan.labels),
            "mean_losses": _mean_losses(plan, state), "world_size": world}


def _round_record(plan: RoundPlan, state: LoopState, *, seconds: float, device: torch.device, world: int) -> dict:
    """The round's line of metrics.jsonl."""
    record = {"kind": "round", "round": plan.round, "clusters": plan.num_clusters, "iterations": plan.iterations,
              "labelled_tracklets": len(plan.labels), "losses": _mean_losses(plan, state), "seconds": seconds,
              "frames_per_s": state.frames / max(state.seconds, 1e-9),
              "loader_wait_share": state.wait_seconds / max(state.seconds, 1e-9), "device": device.type,
              "world_size": world}
    if state.precision_count:
        record["pseudo_label_precision"] = state.precision_sum / state.precision_count
    return record


def run_train_round(config: Config, io: StageIO, *, progress: Progress | None = None) -> list[Path]:
    """`auxreid train-round`: one round of mean-teacher training on its pseudo labels."""
    return [train_to_file(config, clusters_path=io.inputs["clusters"], model_path=io.inputs["model"],
                          out_path=io.outputs["model"], round=io.round, metrics_path=io.outputs.get("metrics"),
                          resume=bool(io.options.get("resume")), device=io.options.get("device"),
                          progress=progress)]
