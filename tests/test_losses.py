"""Tests for stages/training/losses.py: reference values and behaviour of the training losses."""

import math

import pytest
import torch

from stages.errors import AuxReidError
from stages.training.losses import (
    LossWeights,
    batch_hard,
    cross_entropy,
    euclidean_dist,
    label_smoothing_ce,
    rlsce,
    soft_cross_entropy,
    soft_triplet,
    soft_triplet_teacher,
    total_loss,
    watl,
)

TOL = 1e-5


def _nearest_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """The reference stores RLSCE neighbours as a 0/1 (C, C) mask with the cluster itself set; ours are (C, K) indices."""
    off_self = mask.clone().fill_diagonal_(0).bool()
    return torch.stack([row.nonzero().flatten() for row in off_self])


@pytest.fixture(scope="module")
def ref(reference):
    """The loss inputs of the reference vectors as torch tensors."""
    t = {k: torch.from_numpy(reference[k]) for k in ("logits", "logits_teacher", "feats", "feats_teacher")}
    t["labels"] = torch.from_numpy(reference["loss_labels"]).long()
    mask = torch.from_numpy(reference["nearest_map"])
    t["mask"] = mask
    t["nearest"] = _nearest_from_mask(mask)
    t["expected"] = {k: float(reference[k]) for k in ("rlsce", "lsce", "soft_ce", "soft_triplet_margin0",
                                                       "soft_triplet_teacher", "watl_m05_l001", "watl_m05_l1")}
    return t


def test_rlsce_matches_reference(ref):
    assert ref["mask"].sum(1).eq(8 + 1).all()  # K = 8 neighbours plus the cluster itself
    assert abs(rlsce(ref["logits"], ref["labels"], ref["nearest"], epsilon=0.1).item() - ref["expected"]["rlsce"]) <= TOL


def test_label_smoothing_ce_matches_reference(ref):
    assert abs(label_smoothing_ce(ref["logits"], ref["labels"], epsilon=0.1).item() - ref["expected"]["lsce"]) <= TOL


def test_soft_cross_entropy_matches_reference(ref):
    assert abs(soft_cross_entropy(ref["logits"], ref["logits_teacher"]).item() - ref["expected"]["soft_ce"]) <= TOL


def test_soft_triplet_margin0_matches_reference(ref):
    got = soft_triplet(ref["feats"], ref["labels"], margin=0.0).item()
    assert abs(got - ref["expected"]["soft_triplet_margin0"]) <= TOL


def test_soft_triplet_teacher_matches_reference(ref):
    got = soft_triplet_teacher(ref["feats"], ref["feats_teacher"], ref["labels"]).item()
    assert abs(got - ref["expected"]["soft_triplet_teacher"]) <= TOL


@pytest.mark.parametrize(("lam", "key"), [(-0.01, "watl_m05_l001"), (-1.0, "watl_m05_l1")])
def test_watl_matches_reference(ref, lam, key):
    got = watl(0.05 * ref["feats"], ref["labels"], margin=0.5, lam=lam).item()
    assert abs(got - ref["expected"][key]) <= TOL


def test_euclidean_dist_matches_cdist():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=gen, dtype=torch.float64), torch.randn(4, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(euclidean_dist(x, y), torch.cdist(x, y))
    assert euclidean_dist(x, x).diagonal().max() <= 1e-5


def test_batch_hard_picks_farthest_positive_and_nearest_negative():
    feats = torch.tensor([[0.0], [1.0], [3.0], [10.0], [4.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    d_ap, d_an, ap_idx, an_idx = batch_hard(euclidean_dist(feats, feats), labels)
    assert ap_idx.tolist() == [2, 2, 0, 4, 3] and an_idx.tolist() == [4, 4, 4, 2, 2]
    torch.testing.assert_close(d_ap, torch.tensor([3.0, 2.0, 3.0, 6.0, 6.0]))
    torch.testing.assert_close(d_an, torch.tensor([4.0, 3.0, 1.0, 7.0, 1.0]))


def test_rlsce_mass_only_on_label_and_neighbours():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], requires_grad=True)
    labels = torch.tensor([0, 2])
    nearest = torch.tensor([[1], [0], [1]])  # K = 1
    target = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.1, 0.9]])
    loss = rlsce(logits, labels, nearest, epsilon=0.1)
    torch.testing.assert_close(loss, (-target * torch.log_softmax(logits, dim=1)).sum(1).mean())
    loss.backward()  # d(mean CE)/d(logits) = (softmax - target) / n recovers the target actually used
    used = torch.softmax(logits.detach(), dim=1) - 2 * logits.grad
    torch.testing.assert_close(used, target)


def test_rlsce_splits_eps_over_k_neighbours_and_zero_eps_is_ce():
    logits = torch.tensor([[0.3, -0.2, 1.1]])
    labels = torch.tensor([1])
    nearest = torch.tensor([[1, 2], [0, 2], [0, 1]])  # class 1: neighbours 0 and 2, eps / 2 each
    target = torch.tensor([[0.05, 0.9, 0.05]])
    torch.testing.assert_close(rlsce(logits, labels, nearest), (-target * torch.log_softmax(logits, 1)).sum())
    torch.testing.assert_close(rlsce(logits, labels, nearest, epsilon=0.0), cross_entropy(logits, labels))


def test_rlsce_divides_by_the_configured_k_when_fewer_clusters_exist():
    """Three clusters, K = 60: each other cluster gets 0.1 / 60 and the target sums to 0.9 + 2 x 0.1 / 60."""
    logits = torch.tensor([[0.3, -0.2, 1.1]])
    nearest = torch.tensor([[1, 2], [0, 2], [0, 1]])
    target = torch.tensor([[0.1 / 60, 0.9, 0.1 / 60]])
    expected = (-target * torch.log_softmax(logits, 1)).sum()
    torch.testing.assert_close(rlsce(logits, torch.tensor([1]), nearest, k=60), expected)
    alone = torch.zeros(1, 0, dtype=torch.long)  # one cluster: only the label's 0.9 remains
    torch.testing.assert_close(rlsce(logits[:, :1], torch.tensor([0]), alone, k=60), torch.tensor(0.0))
    torch.testing.assert_close(rlsce(logits[:, :2], torch.tensor([0]), alone, k=60),
                               -0.9 * torch.log_softmax(logits[:, :2], 1)[0, 0])
    with pytest.raises(ValueError, match="more than K = 1"):
        rlsce(logits, torch.tensor([1]), nearest, k=1)


def test_label_smoothing_ce_uniform_over_all_classes():
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0]])
    target = torch.tensor([[0.925, 0.025, 0.025, 0.025]])
    expected = (-target * torch.log_softmax(logits, 1)).sum()
    torch.testing.assert_close(label_smoothing_ce(logits, torch.tensor([0])), expected)


def test_rlsce_without_neighbours_is_cross_entropy():
    logits = torch.tensor([[0.3, -0.2]])
    torch.testing.assert_close(rlsce(logits, torch.tensor([0]), torch.zeros(2, 0, dtype=torch.long)),
                               cross_entropy(logits, torch.tensor([0])))


def test_watl_zero_when_every_triplet_satisfies_margin():
    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss = watl(feats, labels, margin=0.5, lam=-0.01)
    assert loss.item() == 0.0
    loss.backward()
    assert feats.grad.abs().max().item() == 0.0


def test_watl_weights_violations_by_exp_lambda_t():
    feats = torch.tensor([[0.0], [2.0], [2.5], [10.0]])  # anchor 0: d_ap 2, d_an 2.5 -> t = 0.5 + m
    labels = torch.tensor([0, 0, 1, 1])
    ts = torch.tensor([2.0 - 2.5 + 1.0, 2.0 - 0.5 + 1.0, 7.5 - 0.5 + 1.0, 7.5 - 8.0 + 1.0])
    expected = (torch.exp(-0.5 * ts) * ts).mean()
    torch.testing.assert_close(watl(feats, labels, margin=1.0, lam=-0.5), expected)


def test_soft_triplet_margin_zero_is_negative_log_p_an():
    feats = torch.tensor([[0.0], [1.0], [3.0], [4.5]])
    labels = torch.tensor([0, 0, 1, 1])
    d_ap, d_an = torch.tensor([1.0, 1.0, 1.5, 1.5]), torch.tensor([3.0, 2.0, 2.0, 3.5])
    expected = -torch.log_softmax(torch.stack((d_ap, d_an), 1), 1)[:, 1].mean()
    torch.testing.assert_close(soft_triplet(feats, labels), expected)


def test_soft_triplet_teacher_uses_student_indices():
    feats = torch.tensor([[0.0], [1.0], [3.0], [4.5]])
    labels = torch.tensor([0, 0, 1, 1])
    teacher = torch.tensor([[0.0], [9.0], [2.0], [0.5]])  # teacher alone would pick other pairs
    d_ap, d_an = torch.tensor([1.0, 1.0, 1.5, 1.5]), torch.tensor([3.0, 2.0, 2.0, 3.5])
    t_ap, t_an = torch.tensor([9.0, 9.0, 1.5, 1.5]), torch.tensor([2.0, 7.0, 7.0, 8.5])
    target = torch.softmax(torch.stack((t_ap, t_an), 1), 1)
    expected = (-target * torch.log_softmax(torch.stack((d_ap, d_an), 1), 1)).mean(0).sum()
    torch.testing.assert_close(soft_triplet_teacher(feats, teacher, labels), expected)


def test_soft_cross_entropy_zero_gradient_when_student_equals_teacher():
    logits = torch.tensor([[1.0, -2.0, 0.5]], requires_grad=True)
    loss = soft_cross_entropy(logits, logits.detach().clone())
    loss.backward()  # CE(p, p) is minimal at the student = teacher: zero gradient
    assert logits.grad.abs().max().item() < 1e-6


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    n, c, d = 16, 6, 8
    labels = torch.arange(n) % c
    return {
        "logits": torch.randn(n, c, generator=gen, requires_grad=True),
        "feats": torch.randn(n, d, generator=gen, requires_grad=True),
        "logits_teacher": torch.randn(n, c, generator=gen, requires_grad=True),
        "feats_teacher": torch.randn(n, d, generator=gen, requires_grad=True),
        "labels": labels,
        "nearest": torch.stack([(torch.arange(c) + 1) % c, (torch.arange(c) + 2) % c], dim=1),
    }


@pytest.mark.parametrize(("id_loss", "triplet"), [("rlsce", "soft"), ("lsce", "watl"), ("ce", "soft")])
def test_total_loss_gradients_reach_student_only(id_loss, triplet):
    b = _batch()
    out = total_loss(b["logits"], b["feats"], b["logits_teacher"], b["feats_teacher"], b["labels"],
                     id_loss=id_loss, triplet=triplet, nearest=b["nearest"])
    out["total"].backward()
    assert b["logits"].grad.abs().sum() > 0 and b["feats"].grad.abs().sum() > 0
    assert b["logits_teacher"].grad is None and b["feats_teacher"].grad is None


def test_total_loss_is_weighted_sum_of_terms():
    b = _batch(1)
    args = (b["logits"], b["feats"], b["logits_teacher"], b["feats_teacher"], b["labels"])
    out = total_loss(*args, nearest=b["nearest"])
    assert set(out) == {"id", "triplet", "soft_id", "soft_triplet", "total"}
    expected = 0.5 * out["id"] + 0.2 * out["triplet"] + 0.5 * out["soft_id"] + 0.8 * out["soft_triplet"]
    torch.testing.assert_close(out["total"], expected)
    torch.testing.assert_close(out["id"], rlsce(b["logits"], b["labels"], b["nearest"]))
    torch.testing.assert_close(out["triplet"], soft_triplet(b["feats"], b["labels"]))
    only_soft = total_loss(*args, id_loss="ce", weights=LossWeights(id=0.0, triplet=0.0, soft_id=0.0, soft_triplet=1.0))
    torch.testing.assert_close(only_soft["total"], out["soft_triplet"])
    watl_out = total_loss(*args, id_loss="lsce", triplet="watl", watl_margin=0.3, watl_lambda=-1.0)
    torch.testing.assert_close(watl_out["triplet"], watl(b["feats"], b["labels"], margin=0.3, lam=-1.0))
    torch.testing.assert_close(watl_out["id"], label_smoothing_ce(b["logits"], b["labels"]))


def test_total_loss_unknown_names_list_choices():
    b = _batch()
    args = (b["logits"], b["feats"], b["logits_teacher"], b["feats_teacher"], b["labels"])
    with pytest.raises(AuxReidError, match=r"^unknown ID loss 'focal'; choose one of: rlsce, lsce, ce$"):
        total_loss(*args, id_loss="focal", nearest=b["nearest"])
    with pytest.raises(AuxReidError, match=r"^unknown triplet loss 'hard'; choose one of: soft, watl$"):
        total_loss(*args, triplet="hard", nearest=b["nearest"])


def test_total_loss_rlsce_without_mask_is_a_bug():
    b = _batch()
    with pytest.raises(ValueError, match="nearest-cluster map"):
        total_loss(b["logits"], b["feats"], b["logits_teacher"], b["feats_teacher"], b["labels"])


def test_losses_do_not_modify_inputs(ref):
    before = {k: ref[k].clone() for k in ("logits", "feats", "feats_teacher", "nearest")}
    rlsce(ref["logits"], ref["labels"], ref["nearest"])
    soft_triplet_teacher(ref["feats"], ref["feats_teacher"], ref["labels"])
    watl(ref["feats"], ref["labels"])
    for key, value in before.items():
        assert torch.equal(ref[key], value)


def test_single_identity_batch_is_finite():
    feats = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    labels = torch.zeros(4, dtype=torch.long)
    for loss in (soft_triplet(feats, labels), watl(feats, labels), soft_triplet_teacher(feats, feats, labels)):
        assert math.isfinite(loss.item())
