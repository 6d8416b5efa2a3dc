"""The reports page's chart: a published report drawn as SVG on the server
with matplotlib's SVG backend (no pyplot, no global figure state, so it is
safe in a threaded server).

Only published figures reach it (`coordination.reports.disclosure`): a
withheld value is drawn as no bar, labelled with a dash, like the table.
The SVG holds no script and loads nothing; its response gets its own
Content-Security-Policy (`CHART_CSP`) that allows only the inline styles
matplotlib writes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

# The chart is an image: no script, no fetches, nothing but matplotlib's
# inline style element and style attributes.
CHART_CSP = ("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; "
             "base-uri 'none'; form-action 'none'")

BAR = "#1d5c8c"
WITHHELD = "#6b6b6b"
COLUMNS = 3


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@cache
def _integer_ticks() -> Any:
    """matplotlib's locator of whole-number ticks (imported on first use)."""
    from functools import partial

    from matplotlib.ticker import MaxNLocator

    return partial(MaxNLocator, integer=True)


@cache
def _figure() -> Any:
    """matplotlib's Figure, imported on first use (a second or so: not at
    every start of the command line), with stable ids inside the SVG (the
    same report draws the same bytes) and text drawn as paths (no
    dependence on the viewer's fonts)."""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams.update({"svg.hashsalt": "onestory", "svg.fonttype": "path",
                                "font.size": 9})
    return Figure


def _plain(text: str) -> str:
    """`text` drawn as written: matplotlib takes what stands between two
    dollar signs as mathematics (and fails on what does not parse, such as
    an area named "North $x^$"); an escaped dollar is a dollar."""
    return text.replace("$", r"\$")


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def draw(title: str, groups: Sequence[str], values: Sequence[tuple[str, str]],
         rows: Sequence[Mapping[str, Any]]) -> bytes:
    """One small horizontal bar chart per value (its words in `values`:
    (key, label)), the groups (`groups`, one label per row, in order) down
    each. `rows[i]` holds row i's published values by key; None (withheld)
    draws no bar and a dash. A value withheld in every row gets no panel;
    the chart names it below instead. Returns the SVG document."""
    title, groups = _plain(title), [_plain(group) for group in groups]
    values = [(key, _plain(label)) for key, label in values]

    def known(key: str) -> list[float]:
        return [n for n in (_number(row.get(key)) for row in rows) if n is not None]

    shown = [(key, label) for key, label in values if known(key)]
    hidden = [label for key, label in values if not known(key)]
    panels = max(1, len(shown))
    cols = min(COLUMNS, panels)
    lines = math.ceil(panels / cols)
    height_each = 0.6 + 0.28 * max(1, len(groups))
    note = 0.3 + 0.18 * math.ceil(len(", ".join(hidden)) / 120) if hidden else 0.0
    fig = _figure()(figsize=(3.9 * cols, height_each * lines + 0.6 + note), layout="constrained")
    fig.suptitle(title, fontsize=11, fontweight="bold")
    if hidden:
        fig.supxlabel(_wrap("Every figure withheld, not drawn: " + ", ".join(hidden), 120),
                      fontsize=8, color=WITHHELD)
    axes = fig.subplots(lines, cols, squeeze=False)
    positions = list(range(len(groups)))
    for index, ax in enumerate(axes.flat):
        if index >= len(shown):
            ax.set_axis_off()
            if not shown and index == 0:
                ax.text(0.5, 0.5, "Every figure in this report is withheld.", ha="center",
                        va="center", fontsize=10, color=WITHHELD, transform=ax.transAxes)
            continue
        key, label = shown[index]
        numbers = [_number(row.get(key)) for row in rows]
        ax.barh(positions, [n if n is not None else 0 for n in numbers], color=BAR)
        top = max(known(key))
        for y, n in zip(positions, numbers, strict=True):
            if n is None:  # withheld: a dash where the bar would start, as in the table
                ax.text(top * 0.02, y, "–", va="center", fontsize=10, fontweight="bold",
                        color=WITHHELD)
            else:
                ax.text(n, y, f" {n:g}", va="center", fontsize=8, color="#222222")
        ax.set_xlim(0, top * 1.25)
        ax.set_yticks(positions, labels=list(groups))
        ax.invert_yaxis()
        ax.set_title(_wrap(label, 48), fontsize=9, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="x", labelsize=7)
        # Whole-number ticks: counts, days and whole percentages have no 2.5.
        ax.xaxis.set_major_locator(_integer_ticks()())
    out = io.BytesIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
