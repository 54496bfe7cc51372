"""Plain fixed-width text tables and the number formats the reports share."""
from __future__ import annotations


def format_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][k], (int, float)) else "l"
                        for k in range(len(headers)))
    lines = []
    for i, r in enumerate(cells):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt_num(x, nd: int = 3) -> str | None:
    """``x`` with ``nd`` decimals; None (shown as '-') when missing."""
    return None if x is None else f"{x:.{nd}f}"


def fmt_pct(x) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def fmt_belief(b) -> str | None:
    """A belief [C, E, D] as three two-decimal numbers."""
    return " ".join(f"{v:.2f}" for v in b) if b else None
