"""`sedwatt analyze`: the paper's Table 1 / Table 2, plots and findings for any runs on a tracking server.

Every number is recomputed from the runs' per-epoch histories (fetched in bulk), not from the
summary metrics a run logged. Only training runs (tag sedwatt.kind = 'train') with at least one
epoch are analysed. Only comparable runs are compared: runs whose configs differ in more than the
--group-by keys (another epoch budget, model, lr, dataset…; seeds, paths and tracking names aside)
form separate cohorts, each with its own tables, plots and findings. Writes runs.csv, table1/table2
(.csv/.md/.tex), savings and hardware tables, model_versions.csv, findings.json, the plots (PNG) and
report.html into --out.

--policies replays early-stopping rules over every run's recorded per-epoch history, without
training: the rules the training callbacks apply (the same functions, asked after each recorded
epoch), over a grid of their parameters, plus the hindsight oracle "stop at 95 % of the run's max
F1" and "never stop". Per rule and run: stop epoch, energy used and saved, F1 at the stop and F1
lost; per group mean ± std; the rules on the Pareto front of (energy saved, F1 lost). Writes
policies.csv, policies_summary.csv/.md/.tex, policies.png and a report section. Grid syntax:
space-separated RULE=VALUE,… items, patience=EPOCHS, slowdown=GAIN[:WINDOW], energy=GAIN_PER_KWH[:WINDOW]
(a gain as 0.01 or 1%; WINDOW defaults to train.slowdown_window), or a YAML file; no value (or
"default") is the default grid: patience=5,10,20 slowdown=0.005:10,0.01:10,0.02:5 energy=0.1:10,1:10,10:10.

Examples:
  sedwatt analyze --experiment sedwatt --out report
  sedwatt analyze --experiment sedwatt --filter "params.epochs = '200'" --group-by hardware --out by_hw
  sedwatt analyze --experiment a --experiment b --group-by params.batch_size tags.hw.gpu_model --out ab
  sedwatt analyze --experiment sedwatt --policies "patience=10,20 slowdown=0.01:10,2%:5 energy=1:10" --out wi
  sedwatt analyze --experiment sedwatt --policies policies.yaml --out whatif
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
        "--policies",
        nargs="?",
        const="default",
        default=None,
        metavar="GRID|FILE.yaml",
        help="also replay stopping rules over the runs' histories: a grid such as "
        "'patience=10,20 slowdown=0.01:10 energy=1:10', a YAML file, or nothing: the default grid (above)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the tables, plots and report.html"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sedwatt_analysis import analyze

    result = analyze(
        args.experiment, args.filter or None, args.group_by or None, args.out, policies=args.policies
    )
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
