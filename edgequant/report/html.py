"""report.html: the same content as report.md, self-contained (plots embedded as data URIs).

The HTML is rendered from report.md rather than built a second time, so the two can never
disagree; only the small Markdown subset the report writer emits is understood (headings,
tables, lists, images, paragraphs, `code` and **bold**).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from edgequant import atomic

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #333}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em}th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}
"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _image(alt: str, src: str, workdir: Path) -> str:
    path = workdir / src
    if not path.is_file():
        return f"<p><em>missing plot {html.escape(src)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    head, body = cells[0], [r for r in cells[2:]]
    align = [c.strip().endswith(":") for c in cells[1]] if len(cells) > 1 else []
    out = ["<table><thead><tr>", *(f"<th>{_inline(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in body:
        out.append("<tr>")
        for i, c in enumerate(r):
            cls = ' class="num"' if i < len(align) and align[i] else ""
            out.append(f"<td{cls}>{_inline(c)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(markdown: str, workdir: str | Path) -> str:
    workdir = Path(workdir)
    lines = markdown.splitlines()
    out: list[str] = []
    i = 0
    title = "edgequant report"
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
            continue
        m = re.match(r"^(#{1,3}) (.*)", line)
        img = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line.strip())
        if m:
            level = len(m.group(1))
            if level == 1:
                title = m.group(2)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif img:
            out.append(_image(img.group(1), img.group(2), workdir))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  ")):
                if lines[i].startswith("- "):
                    items.append(_inline(lines[i][2:]))
                else:
                    items[-1] += "<br>" + _inline(lines[i].strip())
                i += 1
            out.append("<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    body = "\n".join(out)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write(workdir: str | Path) -> Path:
    workdir = Path(workdir)
    path = workdir / "report.html"
    atomic.write_text(path, render((workdir / "report.md").read_text(), workdir))
    return path
