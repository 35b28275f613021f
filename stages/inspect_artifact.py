"""`auxreid inspect`: what any auxreid file holds, as plain rows and sections a command prints and a test reads.

A file is an HDF5 artifact (its provenance, every dataset with shape, dtype and a summary, its schema's
summary), a model.pt (its summary) or a config YAML (validated, every section). Its suffix says which it
must be (.h5/.hdf5, .pt, .yaml/.yml) and its first bytes must agree, so a damaged artifact is refused
rather than shown as the default config; a file with another suffix is what its first bytes say.
A drawing option is checked against the file here, the cluster or query rows included, before anything
is printed or drawn, so a wrong combination costs nothing and the command only prints and draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from stages.artifacts.h5 import Artifact, read_artifact, read_provenance
from stages.artifacts.output_guard import guard_output
from stages.artifacts.readers import CLUSTER_ATTRS, EVAL_ATTRS, FEATURES_ATTRS, check_number_attrs
from stages.artifacts.schemas import SCHEMAS
from stages.config import build_config, config_to_dict, read_yaml
from stages.errors import AuxReidError
from stages.views.summaries import SUMMARIES, summarize_config, summarize_model

Section = tuple[str, list[tuple[str, str]]]
#: The columns of the datasets table.
DATASET_COLUMNS = ("name", "shape", "dtype", "summary")
#: Each drawing option and the schema of the artifact it draws from.
DRAWINGS = {"--plot": "aux", "--montage": "clusters", "--ranklist": "eval"}
#: Numeric root attributes checked per schema, as the stages' readers check them.
_ATTRS = {"features": FEATURES_ATTRS, "clusters": CLUSTER_ATTRS, "eval": EVAL_ATTRS}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
#: The kind of file each suffix promises; any other suffix is read as what its first bytes say.
SUFFIX_KINDS = {".h5": "hdf5", ".hdf5": "hdf5", ".pt": "model", ".yaml": "config", ".yml": "config"}
#: Bytes above which a file of no known suffix is not taken for a config (the shipped ones are a few KiB).
_CONFIG_MAX_BYTES = 1 << 20
#: Each kind as a refusal names it: what the file should have been, and what it was found to be instead.
_SHOULD_BE = {"hdf5": "an HDF5 file", "model": "a torch zip file"}
_FOUND = {"hdf5": "it is an HDF5 file, like an .h5 artifact", "model": "it is a zip file, like a model.pt"}
_SIGNATURE_MISSING = {"hdf5": "its first bytes are not the HDF5 signature",
                      "model": "its first bytes are not the zip signature torch writes"}


class Drawing(NamedTuple):
    """A picture asked for with --plot, --montage or --ranklist, checked against the artifact.

    Attributes:
        option: "--plot", "--montage" or "--ranklist".
        out: the PNG to write.
        cluster: --montage's cluster.
        queries: --ranklist's query rows, None for the worst-AP ones.
        count: --ranklist worst: how many queries.
    """

    option: str
    out: Path
    cluster: int | None = None
    queries: list[int] | None = None
    count: int | None = None


@dataclass(frozen=True)
class InspectResult:
    """What `auxreid inspect` prints, in order: note, provenance, datasets (HDF5 only), sections; then draws.

    Attributes:
        path: the file.
        kind: "hdf5", "model" or "config".
        note: a line printed first ('' for none).
        provenance: the titled provenance rows of an HDF5 artifact, None for other files.
        datasets: (name, shape, dtype, summary) of every dataset, sorted by name.
        sections: the schema's (or model's, or config's) titled key/value summary sections.
        artifact: the HDF5 artifact read, for drawing.
        drawing: the picture asked for, None for none.
    """

    path: Path
    kind: str
    note: str = ""
    provenance: Section | None = None
    datasets: list[tuple[str, str, str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    artifact: Artifact | None = None
    drawing: Drawing | None = None


def file_kind(path: Path) -> str:
    """'hdf5', 'model' (a torch zip file) or 'config': what the suffix promises, checked against the first bytes.

    Raises:
        AuxReidError: a directory, a missing, unreadable or empty file, first bytes that are not what the suffix
            promises, or a file of another suffix that is neither HDF5, a torch zip nor a YAML mapping.
    """
    if path.is_dir():
        raise AuxReidError(f"{path} is a directory; give a file inside it (an .h5 artifact, a model.pt or a config "
                           "YAML), or `auxreid status RUN` for a whole run")
    if not path.is_file():
        raise AuxReidError(f"{path} does not exist; run the stage that writes it first")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise AuxReidError(f"{path} cannot be read ({exc.strerror}); check its permissions") from None
    expected = SUFFIX_KINDS.get(path.suffix.lower())
    if not head:
        fix = ("write a config's sections into it (see configs/synth.yaml)" if expected == "config"
               else "re-create it with the stage that writes it")
        raise AuxReidError(f"{path} is empty (0 bytes); {fix}")
    found = "hdf5" if head == _HDF5_SIGNATURE else "model" if head.startswith(_ZIP_SIGNATURE) else None
    if expected is None:
        if found is None and not _is_yaml_mapping(path):
            raise AuxReidError(f"{path} is not an auxreid file: not HDF5, not a torch zip file and not a YAML mapping "
                               "of config sections; give an .h5 artifact, a model.pt or a config .yaml")
        return found or "config"
    if expected == "config":
        if found is not None:
            raise AuxReidError(f"{path} is not a config YAML ({_FOUND[found]}); give a config .yaml, or name the "
                               "file for what it is")
        return "config"
    if found != expected:
        raise AuxReidError(f"{path} is not {_SHOULD_BE[expected]} ({_FOUND.get(found) or _SIGNATURE_MISSING[expected]});"
                           " re-create it with the stage that writes it")
    return expected


def _is_yaml_mapping(path: Path) -> bool:
    """Whether a file of no known suffix holds a YAML mapping, the one shape of text a config can have; a file far
    bigger than any config is not read whole to find out."""
    try:
        if path.stat().st_size > _CONFIG_MAX_BYTES:
            return False
        return isinstance(yaml.safe_load(path.read_bytes().decode("utf-8-sig")), dict)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False


def dataset_row(name: str, values: np.ndarray) -> tuple[str, str, str, str]:
    """(name, shape, dtype, summary): min/mean/max of the finite numbers, else the first value."""
    if values.dtype.kind in "fiub" and values.size:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        stats = (f"min {finite.min():.4g}  mean {finite.mean():.4g}  max {finite.max():.4g}" if finite.size
                 else "no finite values")
    elif values.size:
        stats = f"e.g. {values.ravel()[0]!s}"
    else:
        stats = "empty"
    return name, str(values.shape), str(values.dtype), stats


def read_known(path: Path) -> Artifact:
    """The artifact with every dataset read, checked against its schema (columns and numeric attributes) when
    this auxreid knows the schema and version; any other auxreid-style HDF5 file is shown as it is."""
    found = read_provenance(path)[0]
    schema = next((s for s in SCHEMAS if (s.name, s.version) == (found.schema, found.schema_version)), None)
    artifact = read_artifact(path, schema)
    if schema is not None and found.schema in _ATTRS:
        check_number_attrs(artifact, _ATTRS[found.schema])
    for name in artifact.data:  # every dataset is shown: read (and check) them all before anything is printed
        artifact.data[name]
    return artifact


def provenance_section(artifact: Artifact) -> Section:
    """The provenance, parents (SHA-256 prefix and location) and other root attributes, titled by file and schema."""
    prov = artifact.provenance
    rows = [(key, str(getattr(prov, key)))
            for key in ("dataset", "fingerprint", "round", "config_hash", "package_version", "created")]
    for name, sha in prov.parents.items():
        where = prov.parent_paths.get(name)
        rows.append((f"parent {name}", sha[:16] + (f" ({where})" if where else "")))
    rows += [(key, str(value)) for key, value in artifact.attrs.items()]
    return f"{artifact.path} ({prov.schema} v{prov.schema_version})", rows


def _drawing(artifact: Artifact, *, plot: Path | None, montage: int | None, ranklist: str | None,
             count: int | None, out: Path | None) -> Drawing | None:
    """The drawing asked for, after checking each option against the artifact's schema, --out and the rows it has."""
    path, schema = artifact.path, artifact.provenance.schema
    asked = [(option, value) for option, value in (("--plot", plot), ("--montage", montage), ("--ranklist", ranklist))
             if value is not None]
    for option, _ in asked:
        if schema != DRAWINGS[option]:
            raise AuxReidError(f"{option} needs a '{DRAWINGS[option]}' artifact, but {path} is a '{schema}' artifact")
    if count is not None and (not asked or asked[0][0] != "--ranklist" or str(asked[0][1]) != "worst"):
        raise AuxReidError("--count goes with --ranklist worst: it says how many of the worst queries to draw")
    if not asked:
        if out is not None:
            raise AuxReidError("--out goes with --montage or --ranklist: it names the PNG they draw")
        return None
    option, value = asked[0]  # each option needs another schema, so at most one is left
    if option == "--plot":
        guard_output(Path(value), "png", option="--plot", inputs={"artifact": path}, replace=True)
        return Drawing(option, Path(value))
    if out is None:
        raise AuxReidError(f"{option} needs --out FILE.png to say where to draw")
    guard_output(Path(out), "png", option="--out", inputs={"artifact": path}, replace=True)
    if option == "--montage":
        from stages.views.montage import montage_rows  # deferred: the montage draws with PIL

        montage_rows(artifact["labels"], int(value), source=str(path))
        return Drawing(option, Path(out), cluster=int(value))
    from stages.views.ranklist import RANKLIST_COUNT, choose_queries, parse_queries  # deferred: PIL, as above

    drawing = Drawing(option, Path(out), queries=parse_queries(str(value)),
                      count=RANKLIST_COUNT if count is None else count)
    choose_queries(artifact["ap"], queries=drawing.queries, count=drawing.count, source=str(path))
    return drawing


def inspect_file(
    path: str | Path,
    *,
    plot: Path | None = None,
    montage: int | None = None,
    ranklist: str | None = None,
    count: int | None = None,
    out: Path | None = None,
) -> InspectResult:
    """Read any auxreid file for `auxreid inspect` and check the drawing asked for.

    Args:
        path: an HDF5 artifact, a model.pt or a config YAML.
        plot: aux.h5: the PNG of the transit-time histograms.
        montage: clusters.h5: the cluster to draw (to `out`).
        ranklist: eval.h5: 'worst' or query rows such as '3,17' (drawn to `out`).
        count: --ranklist worst: how many queries.
        out: the PNG of --montage / --ranklist.

    Raises:
        AuxReidError: an unreadable or invalid file, or a drawing option the file or the options do not allow.
    """
    path = Path(path)
    kind = file_kind(path)
    if kind != "hdf5":
        if plot is not None or montage is not None or ranklist is not None:
            raise AuxReidError(f"--plot / --montage / --ranklist need an HDF5 artifact, but {path} is a {kind} file")
        return _inspect_model(path) if kind == "model" else _inspect_config(path)
    artifact = read_known(path)
    schema = artifact.provenance.schema
    drawing = _drawing(artifact, plot=plot, montage=montage, ranklist=ranklist, count=count, out=out)
    return InspectResult(
        path=path, kind=kind, provenance=provenance_section(artifact),
        datasets=[dataset_row(name, np.asarray(artifact.data[name])) for name in sorted(artifact.data)],
        sections=SUMMARIES[schema](artifact) if schema in SUMMARIES else [], artifact=artifact, drawing=drawing,
    )


def _inspect_model(path: Path) -> InspectResult:
    # deferred: reading a model needs torch, which the other kinds of file do not
    from stages.artifacts.model_file import read_model_file

    return InspectResult(path=path, kind="model", sections=summarize_model(read_model_file(path, mmap=True)))


def _inspect_config(path: Path) -> InspectResult:
    config = config_to_dict(build_config((read_yaml(path), str(path))))
    return InspectResult(path=path, kind="config", sections=summarize_config(config),
                         note=f"{path}: a valid config (unknown keys and out-of-range values would be errors)")
