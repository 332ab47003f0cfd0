"""`sedwatt score`: score DCASE prediction files against a ground truth, as the challenge does.

A single prediction file gives intersection F1 at the paper's DTC/GTC 0.7 and the recipe's 0.5, and
the collar F1 (sed_eval). A folder of operating-point files ``predictions_th_<t>.tsv`` gives PSDS
scenario 1 and 2 (psds_eval), plus the F1 figures at the threshold nearest 0.5. Every input file is
read and checked before any scoring starts; bad input is one error line (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math

SINGLE_KEYS = ("intersection_f1_macro", "intersection_f1_macro_05", "collar_f1_macro")
FOLDER_KEYS = ("psds1", "psds2", *SINGLE_KEYS)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score prediction files: intersection F1, collar F1, PSDS1/PSDS2",
        description=(
            "Score DCASE prediction files. P is one prediction file (events at one threshold) or a folder of "
            "operating-point files predictions_th_<t>.tsv (one per threshold; gives PSDS1 and PSDS2)."
        ),
    )
    parser.add_argument("--predictions", required=True, metavar="P", help="prediction file or folder of predictions_th_<t>.tsv")
    parser.add_argument("--ground-truth", required=True, metavar="GT.tsv", help="strong labels: filename onset offset event_label")
    parser.add_argument("--durations", required=True, metavar="DUR.tsv", help="evaluated clips: filename duration")
    parser.add_argument(
        "--classes",
        default=None,
        metavar="A,B,...",
        help="comma-separated class names (default: the 10 DESED classes)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def score(predictions: str, ground_truth: str, durations: str, classes: tuple[str, ...]) -> dict[str, object]:
    """The figures ``sedwatt score`` prints: metric keys plus ``per_class`` {metric: {class: value}}."""
    from pathlib import Path

    from sedwatt.errors import SedwattError
    from sedwatt.metrics import IntersectionScorer, collar_f1, psds
    from sedwatt.metrics.io import nearest_threshold, operating_point_files, read_durations, read_events

    durations_path, truth_path, predictions_path = Path(durations), Path(ground_truth), Path(predictions)
    clip_durations = read_durations(durations_path)
    truth = read_events(truth_path, classes, clip_durations, durations_path)
    if predictions_path.is_dir():
        files = operating_point_files(predictions_path)
        operating_points = {t: read_events(p, classes, clip_durations, durations_path) for t, p in files.items()}
    elif predictions_path.is_file():
        operating_points = {}
        single = read_events(predictions_path, classes, clip_durations, durations_path)
    else:
        raise SedwattError(f"{predictions_path}: no such file or folder")

    results: dict[str, object] = {}
    per_class: dict[str, dict[str, float]] = {}
    if operating_points:
        if truth.empty:
            raise SedwattError(f"{truth_path}: no events; PSDS needs at least one reference event")
        for scenario in (1, 2):
            value, classwise = psds(operating_points, truth, clip_durations, scenario, progress=True)
            results[f"psds{scenario}"], per_class[f"psds{scenario}"] = value, classwise
        single = operating_points[nearest_threshold(list(operating_points))]
    scorer = IntersectionScorer(truth, clip_durations, classes)
    for key, criterion in (("intersection_f1_macro", 0.7), ("intersection_f1_macro_05", 0.5)):
        results[key], per_class[key] = scorer.f1(single, dtc=criterion, gtc=criterion)
    results["collar_f1_macro"], per_class["collar_f1_macro"] = collar_f1(
        single, truth, clip_durations, classes=classes, progress=True
    )
    results["per_class"] = per_class
    return results


def format_table(results: dict[str, object], classes: tuple[str, ...]) -> str:
    per_class: dict[str, dict[str, float]] = results["per_class"]  # type: ignore[assignment]
    metrics = [k for k in FOLDER_KEYS if k in results]
    width = max(len("macro"), *(len(c) for c in classes))
    header = f"{'class':<{width}}  " + "  ".join(f"{m:>24}" for m in metrics)
    lines = [header, "-" * len(header)]

    def cell(value: float | None) -> str:
        return f"{'-':>24}" if value is None or math.isnan(value) else f"{value:>24.4f}"

    for name in classes:
        lines.append(f"{name:<{width}}  " + "  ".join(cell(per_class[m].get(name)) for m in metrics))
    lines.append("-" * len(header))
    lines.append(f"{'macro':<{width}}  " + "  ".join(cell(float(results[m])) for m in metrics))  # type: ignore[arg-type]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sedwatt.config import DESED_CLASSES
    from sedwatt.errors import SedwattError

    if args.classes is None:
        classes = DESED_CLASSES
    else:
        classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
        if not classes:
            raise SedwattError("--classes: no class names given")
    results = score(args.predictions, args.ground_truth, args.durations, classes)
    if args.json:
        print(json.dumps(results))
    else:
        print(format_table(results, classes))
    return 0
