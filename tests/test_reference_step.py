"""One whole training step against the authors' own code (tests/data/train_step_reference*.npz).

Each file holds one step of the original implementation (`train_step_reference.md` in the project's
shared reference folder describes the keys): initial weights rebuilt from seeds, clips, pseudo labels,
centroids and the RLSCE map, then outputs, losses, gradients, the neck's running statistics and the
weights after Adam and after the EMA update. Every setting is read from the file, so a reference made
with other seeds, shapes or loss settings is checked the same way. This is the check that makes every
change to training safe: the network, ClipModel, the losses, the optimiser and the EMA are the
production ones.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from stages.config import build_config
from stages.model.ema import ema_alpha
from stages.model.pretrained import initial_model
from stages.training.losses import LossWeights
from stages.training.mean_teacher import seed_classifier
from stages.training.optim import make_optimizer
from stages.training.step import ClipModel, LossSettings, train_step

FILES = sorted((Path(__file__).parent / "data").glob("train_step_reference*.npz"))
OUTPUT_TOL = 1e-5  # outputs and losses, absolute
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6  # gradients and running statistics
WEIGHT_TOL = 1e-5  # weights after the Adam step and after the EMA update, absolute


def _close(name: str, ours: torch.Tensor, theirs: np.ndarray, *, rtol: float = 0.0, atol: float) -> None:
    np.testing.assert_allclose(ours.detach().cpu().numpy(), theirs, rtol=rtol, atol=atol, err_msg=name)


def _close_gradient(name: str, ours: torch.Tensor, theirs: np.ndarray) -> None:
    """Within GRAD_RTOL of the gradient's own scale (its largest magnitude), plus GRAD_ATOL.

    Not element by element: a conv1 weight's gradient sums thousands of terms of both signs, so where it
    nearly cancels, float32 summation order alone moves it by more than 1e-4 of itself (4% of conv1's
    elements here, at 5e-6 of the tensor's scale).
    """
    difference = float(np.abs(ours.detach().cpu().numpy() - theirs).max())
    bound = GRAD_RTOL * float(np.abs(theirs).max()) + GRAD_ATOL
    assert difference <= bound, f"{name}: max difference {difference:.3g} > {bound:.3g}"


def _neighbours(nearest_map: np.ndarray) -> torch.Tensor:
    """The reference's (C, C) 0/1 map (the cluster itself set) as our (C, K') indices of the other clusters."""
    off_self = nearest_map.astype(bool) & ~np.eye(len(nearest_map), dtype=bool)
    width = off_self.sum(1)
    assert (width == width[0]).all(), "every cluster of the map has the same number of neighbours"
    return torch.from_numpy(np.nonzero(off_self)[1].reshape(len(nearest_map), -1)).long()


def _config(ref: dict, seed: int):
    """A config with the reference's model and optimiser settings (paper's ResNet-50, random init)."""
    return build_config(({
        "seed": seed,
        "model": {"arch": "resnet50", "last_stride": 2, "stem_relu": False, "pretrained": "none"},
        "train": {"lr": float(ref["adam_lr"]), "weight_decay": float(ref["adam_weight_decay"])},
    }, "train step reference"))


class _Recorder:
    """Keeps the outputs of each ClipModel forward (gradients retained for the student's)."""

    def __init__(self) -> None:
        self.outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def wrap(self, model: ClipModel) -> None:
        forward = model.forward

        def recording(images, *, tracklets):
            features, logits = forward(images, tracklets=tracklets)
            if features.requires_grad:
                features.retain_grad()
                logits.retain_grad()
            self.outputs[id(model)] = (features, logits)
            return features, logits

        model.forward = recording


@pytest.fixture(scope="module", params=FILES, ids=[f.stem for f in FILES])
def step(request):
    """Run the step once per reference file, on one thread as the reference was; the tests compare its parts.

    One thread fixes the summation order of the backward pass. Adam's first step divides each gradient by
    its own magnitude, so a gradient within float noise of zero (a classifier weight's, say) moves its
    weight by up to lr whatever its sign: with two threads one such weight of the reference lands 5e-5 away.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_step(request.param)
    finally:
        torch.set_num_threads(threads)


def _run_step(path: Path) -> dict:
    with np.load(path) as npz:
        ref = {key: npz[key] for key in npz.files}
    assert tuple(ref["adam_betas"]) == (0.9, 0.999) and float(ref["adam_eps"]) == 1e-8, "torch.optim.Adam defaults"
    num_classes, num_clusters = int(ref["num_classes"]), int(ref["num_clusters"])
    networks = {}
    for who in ("student", "teacher"):
        network = initial_model(_config(ref, int(ref[f"{who}_seed"])), num_classes=num_classes)
        networks[f"init_{who}"] = copy.deepcopy(network)
        seed_classifier(network, torch.from_numpy(ref["centroids"]), path)
        networks[f"seeded_{who}"] = network.classifier.weight.detach().clone()
        networks[who] = network
    clips = torch.from_numpy(ref["clips"])
    tracklets, seq_len = clips.shape[:2]
    images = clips.reshape(tracklets * seq_len, *clips.shape[2:])
    with torch.no_grad():
        evaluated = copy.deepcopy(networks["student"]).eval()
        frames = evaluated.forward_features(images)
        bn_frames = F.normalize(evaluated.forward_head(frames)[0], dim=1)
        eval_outputs = (frames.view(tracklets, seq_len, -1).mean(1), bn_frames.view(tracklets, seq_len, -1).mean(1))
    # One BatchNorm group of all clips, as the reference step ran.
    student = ClipModel(networks["student"], bn_chunk=tracklets, num_clusters=num_clusters).train()
    teacher = ClipModel(networks["teacher"], bn_chunk=tracklets, num_clusters=num_clusters).train()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    recorder = _Recorder()
    recorder.wrap(student)
    recorder.wrap(teacher)
    config = _config(ref, 0)
    optimizer = make_optimizer(student, config.train, round=1)
    triplet = "watl" if "loss_triplet_watl" in ref else "soft"
    settings = LossSettings(
        id_loss="rlsce", triplet=triplet, epsilon=float(ref["rlsce_epsilon"]),
        watl_margin=float(ref.get("watl_margin", 0.5)), watl_lambda=float(ref.get("watl_lambda", -0.01)),
        weights=LossWeights(id=float(ref["weight_id"]), triplet=float(ref["weight_triplet"]),
                            soft_id=float(ref["weight_soft_id"]), soft_triplet=float(ref["weight_soft_triplet"])),
        rlsce_k=int(ref["rlsce_K"]),
    )
    global_step = int(ref["ema_global_step"])
    assert ema_alpha(global_step, ema_max=config.train.ema_max) == pytest.approx(float(ref["ema_alpha"]), abs=1e-12)
    losses = train_step(student, teacher, optimizer, images, torch.from_numpy(ref["labels"]).long(),
                        nearest=_neighbours(ref["rlsce_nearest_map"]), losses=settings, step=global_step,
                        ema_max=config.train.ema_max)
    return {"ref": ref, "networks": networks, "student": student, "teacher": teacher, "losses": losses,
            "outputs": recorder.outputs, "eval": eval_outputs, "triplet": triplet}


def _parameter(model: ClipModel, name: str) -> torch.Tensor:
    return dict(model.model.named_parameters())[name]


def test_initial_weights_rebuilt_from_the_seeds(step):
    ref, networks = step["ref"], step["networks"]
    for who in ("student", "teacher"):
        init = networks[f"init_{who}"]
        _close(f"{who} conv1", init.conv1.weight, ref[f"init_{who}_base_0_weight"], atol=0)
        _close(f"{who} layer4.2.bn3", init.layer4[2].bn3.weight, ref[f"init_{who}_base_6_2_bn3_weight"], atol=0)
        _close(f"{who} layer4.2.conv3", init.layer4[2].conv3.weight[:64], ref[f"init_{who}_base_6_2_conv3_weight_first64"],
               atol=0)
        _close(f"{who} classifier", init.classifier.weight, ref[f"init_{who}_classifier_weight"], atol=0)
        rows = len(ref["classifier_rows_at_round_start"])
        seeded = networks[f"seeded_{who}"]
        _close(f"{who} rows from the centroids", seeded[:rows], ref["classifier_rows_at_round_start"], atol=1e-7)
        _close(f"{who} rows past the clusters", seeded[rows:], ref[f"init_{who}_classifier_weight"][rows:], atol=0)


def test_eval_mode_features_are_the_references(step):
    """Infer mode: per frame L2-normalised neck output, averaged over time; cluster mode: raw f averaged."""
    ref = step["ref"]
    f, bn_f_norm = step["eval"]
    _close("eval f", f, ref["eval_student_f"], atol=OUTPUT_TOL)
    _close("eval bn_f normalised", bn_f_norm, ref["eval_student_bn_f_norm"], atol=OUTPUT_TOL)


def test_train_mode_outputs_with_the_neck_on_every_frame(step):
    ref, outputs = step["ref"], step["outputs"]
    for who in ("student", "teacher"):
        features, logits = outputs[id(step[who])]
        _close(f"{who}_f", features, ref[f"{who}_f"], atol=OUTPUT_TOL)
        _close(f"{who}_logits", logits, ref[f"{who}_logits"], atol=OUTPUT_TOL)


def test_four_losses_and_total(step):
    ref, losses = step["ref"], step["losses"]
    names = {"id": "loss_id_rlsce", "triplet": f"loss_triplet_{step['triplet']}", "soft_id": "loss_soft_id",
             "soft_triplet": "loss_soft_triplet", "total": "loss_total"}
    for ours, theirs in names.items():
        assert losses[ours] == pytest.approx(float(ref[theirs]), abs=OUTPUT_TOL), ours


def test_gradients(step):
    ref, student = step["ref"], step["student"]
    features, logits = step["outputs"][id(student)]
    _close_gradient("grad f", features.grad, ref["grad_student_f"])
    _close_gradient("grad logits", logits.grad, ref["grad_student_logits"])
    rows = int(ref["num_clusters"])
    pairs = {"conv1.weight": "grad_student_base_0_weight", "neck.weight": "grad_student_feat_bn_weight",
             "layer4.2.bn3.weight": "grad_student_base_6_2_bn3_weight"}
    for name, key in pairs.items():
        _close_gradient(name, _parameter(student, name).grad, ref[key])
    classifier = _parameter(student, "classifier.weight").grad
    _close_gradient("classifier rows", classifier[:rows], ref["grad_student_classifier_weight_rows_C"])
    assert not classifier[rows:].any(), "rows past the round's clusters get exactly zero gradient"
    assert student.model.neck.bias.grad is None and not student.model.neck.bias.any(), "the neck bias stays frozen at 0"


def test_running_statistics_after_the_forward(step):
    ref = step["ref"]
    for who in ("student", "teacher"):
        model = step[who].model
        for ours, theirs in ((model.neck, "feat_bn"), (model.bn1, "base_1")):
            for stat in ("mean", "var"):
                _close(f"{who} {theirs} running_{stat}", getattr(ours, f"running_{stat}"),
                       ref[f"{who}_{theirs}_running_{stat}_after_forward"], rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_weights_after_adam_and_after_ema(step):
    ref, student, teacher = step["ref"], step["student"], step["teacher"]
    rows = int(ref["num_clusters"])
    _close("student conv1", _parameter(student, "conv1.weight"), ref["student_base_0_weight_after_step"], atol=WEIGHT_TOL)
    _close("student neck", _parameter(student, "neck.weight"), ref["student_feat_bn_weight_after_step"], atol=WEIGHT_TOL)
    _close("student classifier", _parameter(student, "classifier.weight")[:rows],
           ref["student_classifier_weight_rows_C_after_step"], atol=WEIGHT_TOL)
    _close("teacher conv1", _parameter(teacher, "conv1.weight"), ref["teacher_base_0_weight_after_ema"], atol=WEIGHT_TOL)
    _close("teacher neck", _parameter(teacher, "neck.weight"), ref["teacher_feat_bn_weight_after_ema"], atol=WEIGHT_TOL)


def test_rlsce_with_a_narrower_map_than_the_configured_k(step):
    """The file's second map (K = 4, every cluster its 4 nearest) on the student's logits, and its gradient."""
    from stages.training.losses import rlsce

    ref = step["ref"]
    if "aux_rlsce_k4_neighbours" not in ref:
        pytest.skip("this reference holds no second RLSCE map")
    logits = torch.from_numpy(ref["student_logits"]).requires_grad_()
    neighbours = torch.from_numpy(ref["aux_rlsce_k4_neighbours"]).long()
    torch.testing.assert_close(neighbours.sort(1).values, _neighbours(ref["aux_rlsce_k4_nearest_map"]))
    loss = rlsce(logits, torch.from_numpy(ref["labels"]).long(), neighbours, epsilon=float(ref["rlsce_epsilon"]),
                 k=neighbours.shape[1])
    loss.backward()
    assert loss.item() == pytest.approx(float(ref["aux_loss_id_rlsce_k4"]), abs=OUTPUT_TOL)
    _close_gradient("rlsce k4 grad", logits.grad, ref["aux_grad_logits_rlsce_k4"])
