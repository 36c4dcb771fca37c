"""The learning curve as an inline SVG (no JavaScript library, no CDN): training loss
and validation MAE by epoch, each on its own scale (left and right axes)."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 20, 36


def _scale(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1.0, high + 1.0
    return low, high


def learning_curve_svg(epochs: list[dict], total_epochs: int | None = None) -> str:
    """epochs: rows with epoch, train_loss, val_mae (None allowed)."""
    n = max([total_epochs or 0] + [e["epoch"] for e in epochs] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(epoch: int) -> float:
        return LEFT + (plot_w * (epoch - 1) / (n - 1) if n > 1 else plot_w / 2)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="curve" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="learning curve">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for name, key, colour, side in (("train loss", "train_loss", "#1f77b4", "left"),
                                    ("validation MAE (months)", "val_mae", "#d62728", "right")):
        points = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
        if not points:
            continue
        low, high = _scale([v for _, v in points])

        def y(value: float) -> float:
            return TOP + plot_h * (1 - (value - low) / (high - low))

        coords = " ".join(f"{x(ep):.1f},{y(v):.1f}" for ep, v in points)
        parts.append(f'<polyline class="series-{key}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{coords}"/>')
        parts += [f'<circle class="point-{key}" cx="{x(ep):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                  f'<title>epoch {ep}: {escape(name)} {v:.3f}</title></circle>' for ep, v in points]
        ax = LEFT - 6 if side == "left" else WIDTH - RIGHT + 6
        anchor = "end" if side == "left" else "start"
        for value in (low, high):
            parts.append(f'<text x="{ax}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="{anchor}" '
                         f'fill="{colour}">{value:.3g}</text>')
    for epoch in sorted({1, n} | {e["epoch"] for e in epochs}):
        parts.append(f'<text x="{x(epoch):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="11" '
                     f'text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" font-size="12" text-anchor="middle">epoch</text>')
    parts.append(f'<text x="{LEFT}" y="{TOP - 6}" font-size="12" fill="#1f77b4">train loss</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{TOP - 6}" font-size="12" fill="#d62728" '
                 f'text-anchor="end">validation MAE (months)</text>')
    if not epochs:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" font-size="13" '
                     'text-anchor="middle" fill="#666">no epoch finished yet</text>')
    parts.append("</svg>")
    return "".join(parts)
