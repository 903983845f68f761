#!/usr/bin/python3
"""The per-frame temporal error E_i of nst-video-quality's JSON lines as an SVG line plot
(docs/GALLERY.md, "Video"): one line per run, log scale.

    bench/plot_temporal_error.py RESULTS.jsonl OUT.svg [LABEL=FILTER ...]

Each LABEL=FILTER picks the first line whose fields match FILTER, a ';'-separated list of
field=value (e.g. 'frames one by one=mode=independent;size=96'); by default every line,
labelled by its mode and temporal weight."""
import json
import math
import sys


def matches(record, condition):
    return all(str(record.get(k)) == v for k, v in (part.split("=", 1) for part in condition.split(";") if part))


def main(results, out, *selections):
    records = [json.loads(line) for line in open(results) if line.strip()]
    series = []
    if selections:
        for selection in selections:
            label, condition = selection.split("=", 1)
            found = [r for r in records if matches(r, condition)]
            if not found:
                sys.exit(f"no line matches {condition!r}")
            series.append((label, found[0]["temporal_error_per_frame"]))
    else:
        series = [(f"{r['mode']} {r.get('temporal-weight', '')}", r["temporal_error_per_frame"]) for r in records]
    width, height, left, bottom, top, right = 640, 360, 70, 40, 20, 180
    values = [v for _, s in series for v in s if v > 0]
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    frames = max(len(s) for _, s in series)
    x = lambda i: left + (width - left - right) * (i / max(1, frames - 1))
    y = lambda v: top + (height - top - bottom) * (high - math.log10(v)) / (high - low)
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for exponent in range(low, high + 1):
        svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y(10 ** exponent):.1f}" y2="{y(10 ** exponent):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{y(10 ** exponent) + 4:.1f}" text-anchor="end">1e{exponent}</text>')
    for i in range(frames):
        svg.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{i + 1}</text>')
    svg.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">frame i (E_i: frame i against frame i−1 warped)</text>')
    for k, (label, points) in enumerate(series):
        colour = colours[k % len(colours)]
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(points) if v > 0)
        svg.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        svg.append(f'<text x="{width - right + 10}" y="{top + 16 * (k + 1)}" fill="{colour}">{label}</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
