"""Horizontal bar charts as plain SVG, so the benchmarks need no plotting
package. One chart per call: a title and (label, value) rows; a missing
value is drawn as "n/a"."""
from xml.sax.saxutils import escape


def bars(path, title, rows, width=640):
    bar_h, gap, left, top = 22, 8, 110, 40
    height = top + len(rows) * (bar_h + gap) + 10
    values = [v for _, v in rows if v is not None]
    scale = (width - left - 90) / max(values) if values and max(values) > 0 else 0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="24" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_h + gap)
        colour = "#d9534f" if label == "corral" else "#5b7fa6"
        out.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{escape(label)}</text>')
        if value is None:
            out.append(f'<text x="{left + 4}" y="{y + 16}" fill="#777">n/a</text>')
            continue
        w = max(1.0, value * scale)
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        label_text = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 16}">{label_text}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
