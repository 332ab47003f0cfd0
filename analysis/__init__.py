"""sedwatt's analysis (installed as ``sedwatt_analysis``): the paper's tables, plots and findings for any runs.

    from sedwatt_analysis import analyze
    result = analyze(["sedwatt-demo"], group_by=["params.batch_size"], out_dir="demo/report")
    print(result.report_path)

Modules: runs (which runs), history (their per-epoch curves, in bulk), per_run (runs.csv),
cohorts (which runs are comparable), compute (a cohort's tables, findings, plots),
tables (Table 1/2 numbers and cells), render (Markdown/LaTeX/HTML), plots, findings,
machines (hardware, calibrations, registry), links (run pages in the MLflow UI), report (report.html),
policies (stopping rules replayed over the histories), outputs (the files, in memory), api (``analyze``).
"""

from .api import AnalysisResult, analyze

__all__ = ["AnalysisResult", "analyze"]
