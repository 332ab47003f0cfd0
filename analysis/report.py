"""report.html: one self-contained page (tables, findings, plots embedded as base64 PNG).

A single file can be mailed, attached to a run, or opened from a CI artifact without the PNGs
beside it. The template is jinja2 with autoescaping; tables arrive pre-rendered by render.html.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from . import render
from .findings import Finding
from .tables import Table

MAX_RUN_ROWS = 300  # beyond this the page lists the first rows and points to runs.csv

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
.table-wrap { max-width: 100%; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.note { color: #666; font-size: .85em; margin: .2em 0; } .meta td { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
li { margin: .3em 0; }
</style></head><body>
<h1>{{ title }}</h1>
<table class="meta">{% for k, v in meta %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>

<h2>Findings</h2>
{% for p in intro %}<p>{{ p }}</p>{% endfor %}
{% for heading, items in findings %}{% if heading %}<h3>{{ heading }}</h3>{% endif %}
<ul>{% for f in items %}<li>{{ f.text }}</li>{% endfor %}</ul>{% endfor %}

{% for section in sections %}
<h2>{{ section.heading }}</h2>
{% for p in section.paragraphs %}<p>{{ p }}</p>{% endfor %}
{% for t in section.tables %}<h3>{{ t.title }}</h3>{{ t.html }}{% endfor %}
{% for name, src in section.images %}<div><img alt="{{ name }}" src="data:image/png;base64,{{ src }}"></div>{% endfor %}
{% endfor %}
</body></html>
"""


@dataclass
class Section:
    heading: str
    tables: list[Table] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)
    paragraphs: list[str] = field(default_factory=list)


def frame_table(
    title: str,
    frame: pd.DataFrame,
    notes: list[str] | None = None,
    max_rows: int | None = None,
    run_link: Callable[[str], str | None] | None = None,
) -> Table:
    """A plain DataFrame as a Table (numbers with 4 significant digits, NaN shown as n/a).

    ``run_link``: run id → URL; the ``run_id`` column's cells link there in HTML.
    """

    def text(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
            return "n/a"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    shown = frame if max_rows is None else frame.head(max_rows)
    rows = [[text(v) for v in row] for row in shown.itertuples(index=False)]
    all_notes = list(notes or [])
    if max_rows is not None and len(frame) > max_rows:
        all_notes.append(f"first {max_rows} of {len(frame)} rows: runs.csv has them all")
    links: dict[tuple[int, int], str] = {}
    if run_link is not None and "run_id" in frame.columns:
        column = list(frame.columns).index("run_id")
        for i, run_id in enumerate(shown["run_id"]):
            url = run_link(str(run_id))
            if url:
                links[(i, column)] = url
    return Table(title, [str(c) for c in frame.columns], rows, frame, all_notes, links=links)


def render_report(
    title: str,
    meta: list[tuple[str, str]],
    findings: list[tuple[str, list[Finding]]],
    sections: list[Section],
    intro: Sequence[str] = (),
) -> str:
    """``findings``: (heading, findings) per cohort (heading "" for a single cohort); ``intro``: above them."""
    environment = Environment(autoescape=True)
    template = environment.from_string(TEMPLATE)
    return template.render(
        title=title,
        meta=meta,
        intro=list(intro),
        findings=findings,
        sections=[
            {
                "heading": s.heading,
                "paragraphs": s.paragraphs,
                "tables": [{"title": t.title, "html": Markup(render.html(t))} for t in s.tables],
                "images": [(name, base64.b64encode(png).decode("ascii")) for name, png in s.images.items()],
            }
            for s in sections
        ],
    )
