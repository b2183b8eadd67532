"""report.html: the same content as report.md, self-contained (plots embedded as data URIs).

The HTML is rendered from report.md rather than built a second time, so the two can never
disagree. The renderer is markdown-it-py (CommonMark, plus the GFM table rule the reports use
for every comparison), not a hand-written subset. Three choices keep the page safe to open
and to mail around as one file:
- raw HTML in the Markdown is off (`html=False`), so a model, layer or class name such as
  `<script>` is shown as text, never injected;
- every image is a local file under the report's folder, embedded as a `data:` URI; the page
  fetches nothing, so it reads the same offline and in a mail client;
- an image that cannot be embedded (missing, outside the folder, remote, not an image) becomes a
  visible placeholder naming it, so a failed plot does not lose the rest of the report.
"""

from __future__ import annotations

import base64
import html
import itertools
import mimetypes
import urllib.parse
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from edgequant import atomic

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #333}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em}th{background:#f2f2f2}
td[style*=right]{font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}code{background:#f4f4f4;padding:0 .2em}
.missing{display:inline-block;border:1px dashed #c00;color:#c00;padding:.3em .6em}
"""


def _embed(src: str, workdir: Path) -> tuple[str | None, str]:
    """(data URI, "") for a local image under `workdir`, else (None, why it is not shown)."""
    if ":" in src.split("/", 1)[0]:  # http:, https:, data:, file: ... : nothing is fetched
        return None, "not a local file"
    path = (workdir / urllib.parse.unquote(src)).resolve()  # markdown-it %-encodes the URL
    if not path.is_relative_to(workdir.resolve()):
        return None, "outside the report folder"
    if not path.is_file():
        return None, "missing"
    mime = mimetypes.guess_type(path.name)[0] or ""
    if not mime.startswith("image/"):
        return None, "not an image"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}", ""


def _image(self: Any, tokens: list, idx: int, options: Any, env: dict) -> str:
    """markdown-it render rule for `![alt](src)`: the embedded image or a placeholder."""
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env)
    uri, why = _embed(src, env["workdir"])
    if uri is None:
        return f'<span class="missing">image {html.escape(src)} not shown: {why}</span>'
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("image", _image)
    return md


def _title(tokens) -> str:
    """The first level-1 heading as plain text (the browser tab's name)."""
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open" and opening.tag == "h1":
            return "".join(
                t.content for t in inline.children or [] if t.type in ("text", "code_inline")
            )
    return "edgequant report"


def render(markdown: str, workdir: str | Path) -> str:
    """The self-contained HTML page for `markdown`; images resolve against `workdir`."""
    md = _renderer()
    env = {"workdir": Path(workdir)}
    tokens = md.parse(markdown, env)
    body = md.renderer.render(tokens, md.options, env)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(_title(tokens))}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def write(workdir: str | Path) -> Path:
    """workdir/report.md -> workdir/report.html."""
    workdir = Path(workdir)
    path = workdir / "report.html"
    atomic.write_text(path, render((workdir / "report.md").read_text(), workdir))
    return path
