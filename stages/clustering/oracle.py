"""Oracle pseudo labels: the dataset's true train identities in place of clusters, for an upper bound.

Training on them (`cluster.labels: oracle`) runs the same model, data and iterations supervised, so a
label-free result can be read as a share of what true labels reach on that network. Never part of the
method: it is named "oracle" in every artifact and refused when any train identity is unknown.
"""

from __future__ import annotations

import numpy as np

from stages.errors import AuxReidError


def oracle_labels(person_id: np.ndarray, *, source: str) -> np.ndarray:
    """The true identities renumbered 0..C-1 (in increasing id order), one cluster per person.

    Args:
        person_id: (n,) train ids as the features file carries them; -1 marks an unknown id.
        source: the file they come from, named in the error.

    Raises:
        AuxReidError: some ids are unknown (a manifest without person ids, say).
    """
    person_id = np.asarray(person_id, dtype=np.int64)
    unknown = int((person_id < 0).sum())
    if unknown or person_id.size == 0:
        raise AuxReidError(
            f"cluster.labels = oracle trains on the true identities, but {unknown or 'all'} of the {person_id.size} "
            f"train tracklets in {source} have no person id; use cluster.labels: clustering for this dataset"
        )
    return np.unique(person_id, return_inverse=True)[1].reshape(-1).astype(np.int64)
