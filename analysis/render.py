"""Tables as Markdown, LaTeX and HTML, and files written so that a crash never leaves half of one.

tabulate is not installed and these tables are simple (strings in, one header row), so a few lines
per format do it; HTML escaping comes from markupsafe (jinja2's own dependency).
"""

from __future__ import annotations

from markupsafe import escape

from .tables import Table

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
LATEX_SYMBOLS = {"±": r"$\pm$", "->": r"$\rightarrow$"}


def markdown(table: Table) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"

    lines = [
        f"**{table.title}**",
        "",
        line(table.headers),
        "|" + "|".join("---" for _ in table.headers) + "|",
    ]
    lines += [line(row) for row in table.rows]
    lines += [""] + [f"_{note}_" for note in table.notes]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    out = "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)
    for symbol, command in LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def latex(table: Table) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    spec = "l" * table.key_columns + "r" * (len(table.headers) - table.key_columns)
    lines = [
        r"\begin{table}[t]",
        r"  \centering",
        f"  \\caption{{{latex_escape(table.title)}}}",
        f"  \\begin{{tabular}}{{{spec}}}",
        r"    \toprule",
        "    " + " & ".join(latex_escape(h) for h in table.headers) + r" \\",
        r"    \midrule",
    ]
    lines += ["    " + " & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def html_cell(text: str, url: str | None) -> str:
    return f'<td><a href="{escape(url)}">{escape(text)}</a></td>' if url else f"<td>{escape(text)}</td>"


def html(table: Table) -> str:
    """The table in a horizontally scrolling box, so a table wider than the page never overflows it."""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(html_cell(c, table.links.get((i, j))) for j, c in enumerate(row)) + "</tr>"
        for i, row in enumerate(table.rows)
    )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in table.notes)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{notes}'
