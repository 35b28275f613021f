"""`auxreid evaluate` (query x gallery metrics of a round or of saved features) and `auxreid report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from auxreid_cli.common import ForceOption, RichProgress, SetOption, announce_variant, console, errors_to_exit

if TYPE_CHECKING:
    from stages.report import Report
    from stages.rundir import StageIO


def _print_metrics(path: Path) -> None:
    from stages.artifacts.readers import read_eval

    artifact = read_eval(path)
    table = Table(title=f"{path} (round {artifact.provenance.round})")
    table.add_column("metric", style="bold")
    table.add_column("final distance", justify="right")
    table.add_column("plain distance", justify="right")
    final, plain = (artifact[f"{p}/cmc"] for p in ("metrics", "plain"))
    table.add_row("mAP", f"{float(artifact['metrics/mAP']):.4f}", f"{float(artifact['plain/mAP']):.4f}")
    for rank in (1, 5, 10, 20):
        if rank <= len(final):
            table.add_row(f"rank-{rank}", f"{final[rank - 1]:.4f}", f"{plain[rank - 1]:.4f}")
    table.add_row("mINP", f"{float(artifact['metrics/mINP']):.4f}", f"{float(artifact['plain/mINP']):.4f}")
    console.print(table)
    attrs = artifact.attrs
    switches = ", ".join(k for k in ("toc", "scp", "sts", "rerank") if attrs.get(k)) or "none"
    console.print(
        f"queries: {attrs['num_valid_queries']} evaluated, {attrs['num_skipped_queries']} skipped (no valid match); "
        f"test-time terms: {switches}"
    )


def _evaluate(
    run: Annotated[Optional[str], typer.Argument(help="Run name or path (reads RUN/config.yaml, writes RUN/round_00R/eval.h5).")] = None,
    round: Annotated[Optional[int], typer.Option("--round", "-r", help="Round to evaluate (its model.pt, unless --features).")] = None,
    features: Annotated[Optional[Path], typer.Option("--features", help="Saved features.h5 / eval.h5 with query/ and gallery/ groups; no model or images needed.")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="model.pt whose teacher extracts the features (default: the round's).")] = None,
    aux: Annotated[Optional[Path], typer.Option("--aux", help="aux.h5 for test-time TOC / STS (default: RUN/aux.h5).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="eval.h5 to write (eval.json beside it); required without RUN.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (without RUN; default: the one frozen in --features / --model).")] = None,
    extract_only: Annotated[bool, typer.Option("--extract-only", help="With RUN: only bring the round's test_features.h5 (its model's query/gallery features) up to date; rank nothing.")] = False,
    force: ForceOption = False,
    set_: SetOption = None,
) -> None:
    """Evaluate query x gallery retrieval: mAP, CMC (rank 1/5/10/20) and mINP, market1501 protocol.

    With RUN, the round's query/gallery features are kept in RUN/round_00R/test_features.h5 and reused while
    the model and the extract settings are unchanged: a changed evaluate.* setting or aux.h5 only re-ranks.

    Examples: auxreid evaluate demo --round 5;
    auxreid evaluate --features eval.h5 --aux aux.h5 --out eval2.h5 --set evaluate.rerank=true
    """
    from stages.evaluate import run_evaluate
    from stages.resolve import resolve

    resolved, io = resolve("evaluate", run=run, round=round, overrides=set_, given={
        "features": features, "model": model, "aux": aux, "out": out, "config_file": config}, options={
        "extract_only": extract_only, "force": force})
    with RichProgress() as progress:
        written = run_evaluate(resolved, io, progress=progress)
    if extract_only:
        _print_test_features(io, written)
        announce_variant(io)
        return
    console.print(f"[green]wrote[/] {written[0]} and {written[1]}")
    _print_metrics(written[0])
    announce_variant(io)


def _print_test_features(io: StageIO, written: list[Path]) -> None:
    from stages.artifacts.h5 import read_artifact
    from stages.artifacts.schemas import FEATURES

    path = io.outputs["test_features"]
    found = read_artifact(path, FEATURES)
    verb = "[green]wrote[/]" if written else "reused"
    console.print(f"{verb} {path} ({len(found['query/features'])} query and {len(found['gallery/features'])} "
                  f"gallery tracklets, model {io.input('model')})")


#: Shorter terminal headers, so each half of the report table fits 80 columns.
_HEADERS = {"noise_ratio": "noise", "iterations": "iters", "evaluate_s": "eval s"}


def _report(
    run: Annotated[str, typer.Argument(help="Run name or path.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG figure to write (default RUN/report.png; RUN/report.md is written too).")] = None,
    oracle: Annotated[Optional[str], typer.Option("--oracle", help="A run of the same config with cluster.labels=oracle (true identities as pseudo labels): the report says what share of its mAP this run reaches.")] = None,
) -> None:
    """Per round: mAP, rank-1, clusters, noise, NMI/nmi_all/purity, iterations, mean loss, pseudo-label precision
    and the seconds of extract, cluster, train-round and evaluate: figure, table and RUN/report.md; then the last
    evaluated round and the best evaluated round by mAP (the paper's figures are best-of-evaluated-rounds).

    Example: auxreid report demo (writes artifacts/demo/report.png and report.md);
    auxreid report demo --oracle demo-oracle (adds the share of the oracle run's mAP)
    """
    from stages.report import run_report
    from stages.rundir import RunDir

    run_dir = RunDir.resolve(run)
    report = run_report(run_dir, out, oracle=RunDir.resolve(oracle) if oracle is not None else None)
    _print_report(run, report)


def _print_report(run: str, report: Report) -> None:
    from stages.views.report_table import QUALITY_COLUMNS, TRAINING_COLUMNS, table_rows

    for title, columns in ((f"run {run}: retrieval and pseudo labels", QUALITY_COLUMNS),
                           (f"run {run}: training and stage seconds", TRAINING_COLUMNS)):
        table = Table(title=title)
        for column in columns:
            table.add_column(_HEADERS.get(column, column.replace("_", " ")), justify="right")
        for cells in table_rows(report.rows, columns):
            table.add_row(*cells)
        console.print(table)
    if report.variants:
        from stages.views.report_table import VARIANT_COLUMNS, variant_cells

        table = Table(title=f"run {run}: variants (beside the run's own files, not part of the loop)")
        for column in VARIANT_COLUMNS:
            table.add_column(column, justify="left" if column in ("variant", "differs in") else "right")
        for cells in variant_cells(report.variants):
            table.add_row(*cells)
        console.print(table)
    for line in report.summary:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {report.figure} and {report.markdown}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(errors_to_exit(_evaluate))
    app.command("report")(errors_to_exit(_report))
