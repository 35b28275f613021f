"""Dense train pieces: each train tracklet cut into consecutive pieces of `data.dense_step` frames.

The paper trains Duke on such pieces (step 40): more, shorter train tracklets per identity, so an
identity seen by few cameras still has enough members to form a cluster. The same rule applies to
every dataset whose config asks for it (Duke, the synthetic network in either layout, MARS, manifests);
query and gallery tracklets always stay whole.
"""

from __future__ import annotations

import dataclasses

from stages.data.base import DatasetSplit, Tracklet
from stages.errors import AuxReidError


def split_dense(tracklets: tuple[Tracklet, ...], *, step: int) -> tuple[Tracklet, ...]:
    """Cut each tracklet into n // step consecutive pieces; the last piece also takes the remainder.

    This is the authors' rule: 95 frames at step 40 give pieces of 40 and 55 (never 40 + 40 + 15), and a
    tracklet shorter than the step stays whole. A remainder of its own would add a short piece per
    tracklet (about a quarter more pieces on Duke), which moves the adaptive eps, the cluster counts and
    with them the dynamic iterations. Piece k of tracklet "0001/0003" is named "0001/0003#k".

    Args:
        tracklets: the whole tracklets, in order.
        step: piece length in frames, >= 1.

    Returns:
        The pieces, tracklet by tracklet, in temporal order.
    """
    pieces = []
    for tracklet in tracklets:
        count = max(len(tracklet.frames) // step, 1)
        bounds = [k * step for k in range(count)] + [len(tracklet.frames)]
        for k, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            pieces.append(
                Tracklet(
                    frames=tracklet.frames[begin:end],
                    person_id=tracklet.person_id,
                    camera=tracklet.camera,
                    times=tracklet.times[begin:end] if tracklet.times is not None else None,
                    name=f"{tracklet.name}#{k}",
                )
            )
    return tuple(pieces)


def dense_train(dataset: DatasetSplit, step: int) -> DatasetSplit:
    """The dataset with its train tracklets cut by `split_dense` (`step` 0 keeps them whole).

    Raises:
        AuxReidError: a negative step.
    """
    if step < 0:
        raise AuxReidError(f"dense_step is {step}, expected >= 0 (0 keeps tracklets whole)")
    train = split_dense(dataset.train, step=step) if step else dataset.train
    return dataclasses.replace(dataset, train=train, meta={**dataset.meta, "dense_step": step})
