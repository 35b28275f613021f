"""`auxreid init` and `auxreid inspect`: run directories and a look inside any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from auxreid_cli.common import SetOption, console, errors_to_exit, print_sections
from stages.config import load_config
from stages.errors import AuxReidError


def _init(
    run: Annotated[str, typer.Argument(help="Run name (created under artifacts/) or a path.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML file overriding the paper defaults.")],
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing run's config.")] = False,
) -> None:
    """Create a run directory with its frozen, fully resolved config.

    Example: auxreid init demo --config configs/synth.yaml --set data.root=data/synth
    """
    from stages.init_run import run_init
    from stages.rundir import RunDir

    resolved = load_config(config, set_)
    written = run_init(RunDir.resolve(run), resolved, force=force)
    console.print(f"[green]created[/] {written[0]}")
    for extra in written[1:]:
        console.print(f"[green]wrote[/] {extra}")


def _summary_table(name: str, values) -> tuple[str, str, str, str]:
    import numpy as np

    if values.dtype.kind in "fiub" and values.size:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        stats = (
            f"min {finite.min():.4g}  mean {finite.mean():.4g}  max {finite.max():.4g}" if finite.size else "no finite values"
        )
    elif values.size:
        stats = f"e.g. {values.ravel()[0]!s}"
    else:
        stats = "empty"
    return name, str(values.shape), str(values.dtype), stats


def _file_kind(path: Path) -> str:
    """'hdf5', 'model' (a torch zip file) or 'config' (anything else is read as YAML), by the file's first bytes."""
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
    if head == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    return "model" if head.startswith(b"PK\x03\x04") else "config"


def _inspect_other(path: Path, kind: str) -> None:
    """model.pt: provenance and training summary; a config YAML: every section, validated against the schema."""
    from stages.config import build_config, config_to_dict, read_yaml

    if kind == "model":
        from stages.artifacts.model_file import read_model_file
        from stages.views.summaries import summarize_model

        print_sections(summarize_model(read_model_file(path, mmap=True)))
        return
    config = config_to_dict(build_config((read_yaml(path), str(path))))
    console.print(f"{path}: a valid config (unknown keys and out-of-range values would be errors)")
    sections = [("top level", [(key, str(value)) for key, value in config.items() if not isinstance(value, dict)])]
    sections += [(name, [(key, str(value)) for key, value in values.items()])
                 for name, values in config.items() if isinstance(values, dict)]
    print_sections(sections)


def _read_known(path: Path):
    """The artifact, checked against its schema (columns and numeric attributes) when this version reads it."""
    from stages.artifacts.h5 import read_artifact, read_provenance
    from stages.artifacts.readers import CLUSTER_ATTRS, EVAL_ATTRS, FEATURES_ATTRS, check_number_attrs
    from stages.artifacts.schemas import AUX, CLUSTERS, EVAL, FEATURES

    found = read_provenance(path)[0]
    schema = next((s for s in (AUX, CLUSTERS, EVAL, FEATURES)
                   if (s.name, s.version) == (found.schema, found.schema_version)), None)
    artifact = read_artifact(path, schema)
    attrs = {"features": FEATURES_ATTRS, "clusters": CLUSTER_ATTRS, "eval": EVAL_ATTRS}.get(found.schema)
    if schema is not None and attrs is not None:
        check_number_attrs(artifact, attrs)
    for name in artifact.data:  # inspect shows every dataset: read (and check) them all before printing anything
        artifact.data[name]
    return artifact


def _inspect(
    path: Annotated[Path, typer.Argument(help="Any auxreid artifact (.h5), a model.pt or a config .yaml.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="aux.h5: draw the transit-time histograms to this PNG.")] = None,
    montage: Annotated[Optional[int], typer.Option("--montage", help="clusters.h5: draw this cluster's tracklets.")] = None,
    ranklist: Annotated[Optional[str], typer.Option("--ranklist", metavar="worst|Q[,Q...]", help="eval.h5: draw queries with their top-10 gallery: the --count worst-AP ones (worst) or these query rows.")] = None,
    count: Annotated[Optional[int], typer.Option("--count", help="--ranklist worst: how many queries, worst first (default 6).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG written by --montage / --ranklist.")] = None,
) -> None:
    """Print an artifact's provenance, datasets, shapes and summary statistics (also model.pt and config YAML).

    Example: auxreid inspect artifacts/demo/round_001/clusters.h5 --montage 3 --out cluster3.png
    """
    kind = _file_kind(path)
    if kind != "hdf5":
        if plot is not None or montage is not None or ranklist is not None:
            raise AuxReidError(f"--plot / --montage / --ranklist need an HDF5 artifact, but {path} is a {kind} file")
        _inspect_other(path, kind)
        return
    import numpy as np

    artifact = _read_known(path)
    prov = artifact.provenance
    table = Table(title=f"{path} ({prov.schema} v{prov.schema_version})", show_header=False)
    table.add_column("attribute", style="bold")
    table.add_column("value")
    for key in ("dataset", "fingerprint", "round", "config_hash", "package_version", "created"):
        table.add_row(key, str(getattr(prov, key)))
    for name, sha in prov.parents.items():
        where = prov.parent_paths.get(name)
        table.add_row(f"parent {name}", sha[:16] + (f" ({where})" if where else ""))
    for key, value in artifact.attrs.items():
        table.add_row(key, str(value))
    console.print(table)
    datasets = Table(title="datasets")
    for column in ("name", "shape", "dtype", "summary"):
        datasets.add_column(column)
    for name in sorted(artifact.data):
        datasets.add_row(*_summary_table(name, np.asarray(artifact.data[name])))
    console.print(datasets)

    from stages.views.montage import montage as draw_montage
    from stages.views.ranklist import RANKLIST_COUNT, parse_queries, ranklist as draw_ranklist
    from stages.views.summaries import SUMMARIES
    from stages.views.transit_plot import plot_transit

    if prov.schema in SUMMARIES:
        print_sections(SUMMARIES[prov.schema](artifact))
    requests = {"--plot": (plot, "aux"), "--montage": (montage, "clusters"), "--ranklist": (ranklist, "eval")}
    for option, (value, schema) in requests.items():
        if value is None:
            continue
        if prov.schema != schema:
            raise AuxReidError(f"{option} needs a '{schema}' artifact, but {path} is a '{prov.schema}' artifact")
        if option == "--plot":
            written = plot_transit(artifact, value)
        elif out is None:
            raise AuxReidError(f"{option} needs --out FILE.png to say where to draw")
        elif option == "--montage":
            written = draw_montage(artifact, value, out)
        else:
            written = draw_ranklist(artifact, out, queries=parse_queries(value),
                                    count=RANKLIST_COUNT if count is None else count)
        console.print(f"[green]wrote[/] {written}")


def register(app: typer.Typer) -> None:
    from auxreid_cli.choices import fixed_value_keys

    app.command("init", epilog=f"Keys with a fixed set of values: {fixed_value_keys()}.")(errors_to_exit(_init))
    app.command("inspect")(errors_to_exit(_inspect))
