"""SVG charts with axes, units and legends, drawn server-side: no chart library, nothing fetched by the page."""

from __future__ import annotations

import html
import math

COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "neutral": "#757575"}
LINE = "#1565c0"
W, H, LEFT, BOTTOM, TOP = 720, 220, 56, 46, 26


def _nice(top: float) -> float:
    """The axis' upper bound: 1, 2 or 5 times a power of ten, at or above `top`."""
    if top <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(top))
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= top * (1 - 1e-9))


def _frame(title: str, x_label: str, y_label: str, y_top: float, legend: list[tuple[str, str]]) -> list[str]:
    esc = html.escape
    plot_h = H - BOTTOM - TOP
    parts = [
        f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{esc(title)}" class="chart">',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{esc(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - 10}" y2="{H - BOTTOM}" stroke="#555"/>',
        f'<text x="{(LEFT + W) / 2:.0f}" y="{H - 4}" font-size="11" text-anchor="middle">{esc(x_label)}</text>',
        f'<text x="12" y="{TOP + plot_h / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12,{TOP + plot_h / 2:.0f})">{esc(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = H - BOTTOM - fraction * plot_h
        value = y_top * fraction
        label = f"{value:.0f}" if y_top >= 10 else f"{value:.2g}"
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.0f}" font-size="10" text-anchor="end">{label}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y:.0f}" x2="{W - 10}" y2="{y:.0f}" stroke="#eee"/>')
    x = W - 10 - sum(24 + 6.5 * len(name) for name, _ in legend)  # legends right-aligned, each as wide as its text
    for name, colour in legend:
        parts.append(f'<rect x="{x:.0f}" y="5" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.0f}" y="14" font-size="11">{esc(name)}</text>')
        x += 24 + 6.5 * len(name)
    return parts


def sentiment_bars(buckets: list[tuple[str, dict[str, int]]], title: str, x_label: str) -> str:
    """Stacked bars of reviews per period, one colour per sentiment."""
    if not buckets:
        return f'<p class="empty">{html.escape(title)}: no reviews indexed yet.</p>'
    kinds = sorted({k for _, counts in buckets for k in counts}, key=lambda k: (k not in COLOURS, k))
    legend = [(k, COLOURS.get(k, "#999")) for k in kinds]
    top = _nice(max(sum(counts.values()) for _, counts in buckets))
    parts = _frame(title, x_label, "reviews", top, legend)
    plot_w, plot_h = W - 10 - LEFT, H - BOTTOM - TOP
    bar_w = plot_w / len(buckets)
    widest = max(min(len(label), 8) for label, _ in buckets) * 5.5 + 10  # px a tick label needs at 9 px
    every = max(1, math.ceil(len(buckets) / max(1, plot_w // widest)))
    for i, (label, counts) in enumerate(buckets):
        x, y = LEFT + i * bar_w, float(H - BOTTOM)
        for kind, colour in legend:
            h = counts.get(kind, 0) / top * plot_h
            y -= h
            parts.append(
                f'<rect x="{x + bar_w * 0.1:.1f}" y="{y:.1f}" width="{max(bar_w * 0.8, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{html.escape(label)}: {counts.get(kind, 0)} {html.escape(kind)}</title></rect>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{H - BOTTOM + 13}" font-size="9" text-anchor="middle">'
                f"{html.escape(label[-8:] if len(label) > 10 else label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line(points: list[tuple[float, float]], title: str, x_label: str, y_label: str, name: str) -> str:
    """One series over time: x in seconds since the page started watching."""
    if len(points) < 2:
        return f'<p class="empty">{html.escape(title)}: waiting for a second look.</p>'
    x0, x1 = points[0][0], max(points[-1][0], points[0][0] + 1e-9)
    top = _nice(max(y for _, y in points))
    parts = _frame(title, x_label, y_label, top, [(name, LINE)])
    plot_w, plot_h = W - 10 - LEFT, H - BOTTOM - TOP
    xy = " ".join(
        f"{LEFT + (x - x0) / (x1 - x0) * plot_w:.1f},{H - BOTTOM - max(y, 0) / top * plot_h:.1f}" for x, y in points
    )
    parts.append(f'<polyline points="{xy}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for fraction in (0.0, 0.5, 1.0):
        x = LEFT + fraction * plot_w
        parts.append(
            f'<text x="{x:.0f}" y="{H - BOTTOM + 13}" font-size="10" text-anchor="middle">'
            f"{x0 + fraction * (x1 - x0):.0f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
