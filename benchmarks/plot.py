"""A small SVG of a benchmark result: cold wall time of ours, skopeo and the limit per workload.

    python benchmarks/plot.py RESULT.json [OUT.svg]

run.py calls ``write_svg`` itself when given ``--json`` (the SVG goes beside the JSON). Plain
SVG text, no plotting library: each workload is a row of three bars on its own scale (W3 takes
seconds, W2 a fraction of one), labelled with the seconds and the ratio to the limit.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

BARS = [("ours", "cold", "#2b6cb0"), ("skopeo", "skopeo", "#a0aec0"),
        ("limit", "limit", "#38a169")]
WIDTH, LABEL_W, BAR_W, BAR_H, GAP = 720, 70, 460, 16, 4


def svg(result: dict[str, Any]) -> str:
    """The SVG text for a run.py result (its JSON)."""
    works = result["workloads"]
    row_h = len(BARS) * (BAR_H + GAP) + 26
    height = 44 + row_h * len(works) + 24
    env = result.get("environment", {})
    title = (f"cold run, wall time (median of {result.get('runs', '?')}); "
             f"{env.get('cpus', '?')} CPUs, commit {str(env.get('git_head', '?'))[:7]}")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    y = 44
    for name, work in works.items():
        out.append(f'<text x="10" y="{y + 12}" font-weight="bold">'
                   f'{escape(name)}: {escape(work["title"])}</text>')
        scale = BAR_W / max(work[key]["wall_s"] for _, key, _ in BARS)
        limit = work["limit"]["wall_s"]
        for i, (label, key, colour) in enumerate(BARS):
            wall = work[key]["wall_s"]
            top = y + 18 + i * (BAR_H + GAP)
            out.append(f'<text x="{LABEL_W - 8}" y="{top + 12}" text-anchor="end">{label}</text>')
            out.append(f'<rect x="{LABEL_W}" y="{top}" width="{wall * scale:.1f}" '
                       f'height="{BAR_H}" fill="{colour}"/>')
            note = f"{wall:.3f} s" + ("" if key == "limit" else f"  ({wall / limit:.2f}× limit)")
            out.append(f'<text x="{LABEL_W + wall * scale + 6:.1f}" y="{top + 12}">'
                       f'{escape(note)}</text>')
        y += row_h
    out.append(f'<text x="10" y="{height - 8}" fill="#555">limit: curl of the unique blobs, '
               f'4 at a time, then openssl dgst -sha256; shorter is better</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(result: dict[str, Any], path: Path) -> None:
    path.write_text(svg(result))


if __name__ == "__main__":
    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_suffix(".svg")
    write_svg(json.loads(source.read_text()), target)
    print(f"wrote {target}")
