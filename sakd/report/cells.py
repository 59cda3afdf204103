"""How one table cell reads: "71.05 ± 0.12 (n=3; paper 71.05)", "+0.35", "—"."""

from __future__ import annotations

from sakd.report.aggregate import Summary

MISSING = "—"


def fmt_value(value: float) -> str:
    return f"{value:.2f}"


def fmt_delta(delta: float) -> str:
    """Signed, two decimals; a difference that rounds to zero reads +0.00, never -0.00."""
    text = f"{delta:+.2f}"
    return "+0.00" if text == "-0.00" else text


def fmt_summary(summary: Summary | None) -> str:
    if summary is None:
        return MISSING
    if summary.std is None:
        return fmt_value(summary.mean)
    return f"{fmt_value(summary.mean)} ± {fmt_value(summary.std)}"


def cell_text(main: str, n: int | None = None, paper: str | None = None) -> str:
    """`main` followed by the seed count and the paper's figure, when known."""
    notes = ([f"n={n}"] if n is not None else []) + ([f"paper {paper}"] if paper else [])
    return f"{main} ({'; '.join(notes)})" if notes else main


def summary_cell(summary: Summary | None, paper: float | None = None) -> str:
    return cell_text(
        fmt_summary(summary),
        n=summary.n if summary else None,
        paper=fmt_value(paper) if paper is not None else None,
    )


def value_cell(value: float | None, paper: float | None = None) -> str:
    main = fmt_value(value) if value is not None else MISSING
    return cell_text(main, paper=fmt_value(paper) if paper is not None else None)


def delta_cell(
    stan: Summary | None, adap: Summary | None,
    paper_stan: float | None = None, paper_adap: float | None = None,
) -> str:
    """Adap. - Stan. of the means; the paper's Delta from its own two cells."""
    main = fmt_delta(adap.mean - stan.mean) if stan and adap else MISSING
    paper = None
    if paper_stan is not None and paper_adap is not None:
        paper = fmt_delta(round(paper_adap - paper_stan, 2))
    return cell_text(main, paper=paper)
