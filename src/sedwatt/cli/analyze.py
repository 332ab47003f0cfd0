"""`sedwatt analyze`: the paper's Table 1 / Table 2, plots and findings for any runs on a tracking server.

Every number is recomputed from the runs' per-epoch histories (fetched in bulk), not from the
summary metrics a run logged. Only training runs (tag sedwatt.kind = 'train') with at least one
epoch are analysed. Only comparable runs are compared: runs whose configs differ in more than the
--group-by keys (another epoch budget, model, lr, dataset…; seeds, paths and tracking names aside)
form separate cohorts, each with its own tables, plots and findings. Writes runs.csv, table1/table2
(.csv/.md/.tex), savings and hardware tables, model_versions.csv, findings.json, the plots (PNG) and
report.html into --out.

Examples:
  sedwatt analyze --experiment sedwatt --out report
  sedwatt analyze --experiment sedwatt --filter "params.epochs = '200'" --group-by hardware --out by_hw
  sedwatt analyze --experiment a --experiment b --group-by params.batch_size tags.hw.gpu_model --out ab
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="tables, plots and findings of training runs (energy vs F1), as CSV/Markdown/LaTeX and report.html",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--experiment", action="append", required=True, metavar="NAME", help="experiment name (repeatable)"
    )
    parser.add_argument(
        "--filter",
        default="",
        metavar="STR",
        help="MLflow search filter, e.g. \"params.seed = '1'\" (default: none)",
    )
    parser.add_argument(
        "--group-by",
        nargs="+",
        action="extend",
        default=None,
        metavar="KEY",
        help="params.X / tags.X as in MLflow's search syntax, or 'hardware' (GPU model, else CPU model) or "
        "'experiment' (default: params.batch_size)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the tables, plots and report.html"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt_analysis import analyze

    result = analyze(args.experiment, args.filter or None, args.group_by or None, args.out)
    skipped = f", {result.n_without_epochs} without any epoch left out" if result.n_without_epochs else ""
    print(
        f"analysed {len(result.runs)} training runs{skipped} "
        f"(histories via {result.route} in {result.timings_s.get('fetch', 0.0):.1f} s)"
    )
    if len(result.cohorts) > 1:
        print(
            f"{len(result.cohorts)} cohorts of comparable runs (their configs differ beyond the group key; "
            "each is analysed on its own, never compared with another):"
        )
        for cohort in result.cohorts:
            n = len(cohort.runs)
            print(f"  cohort {cohort.cohort.index} ({cohort.cohort.label}): {n} run{'s' if n != 1 else ''}")
    for finding in result.findings:
        print(f"- [{finding.cohort}] {finding.text}" if finding.cohort else f"- {finding.text}")
    print(f"wrote {len(result.files)} files to {result.out_dir}")
    print(f"report: {result.report_path}")
    return 0
