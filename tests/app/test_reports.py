"""Reports for people (issue 22 part 3): A4 vector PDF, TrueType fonts, who/what/when, SIMULATED.

One short simulated run per procedure; each PDF report is checked with poppler's
``pdfinfo`` (A4 page size, several pages), ``pdffonts`` (no Type 3 font) and
``pdftotext`` (the sample, the pixel, the procedure and the SIMULATED mark are text).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

from perovlab_daq.cli import main
from procedures import registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_helpers import FAST_PARAMETERS, PRESETS  # noqa: E402

INSTALLED = dict(registry.PROCEDURES)
SAMPLE = "B12-report"
POPPLER = all(shutil.which(tool) for tool in ("pdfinfo", "pdffonts", "pdftotext"))
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils (pdfinfo...) missing")


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished run file per procedure on the simulated bench, sample B12-report, pixel 2."""
    from perovlab_daq.bench import sim_bench
    from perovlab_daq.runner import execute_run, plan_run

    out = tmp_path_factory.mktemp("reports")
    files = {}
    for name, parameters in FAST_PARAMETERS.items():
        plan = plan_run(
            name,
            bench_config=sim_bench(PRESETS[name]),
            parameters=parameters,
            output=out / name,
            sample={"sample": SAMPLE, "pixel": "2", "operator": "ann"},
        )
        outcome = execute_run(plan)
        assert outcome.status == "finished", (name, outcome.reason)
        files[name] = outcome.path
    return files


def _poppler(tool: str, path: Path) -> str:
    return subprocess.run(
        [tool, str(path), *(["-"] if tool == "pdftotext" else [])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@needs_poppler
@pytest.mark.parametrize("name", list(FAST_PARAMETERS))
def test_pdf_report_is_a4_truetype_with_sample_and_simulated_mark(name, run_files, tmp_path):
    before = matplotlib.rcParams["pdf.fonttype"]
    out = tmp_path / f"{name}.pdf"
    assert main(["report", str(run_files[name]), "-o", str(out)]) == 0
    assert matplotlib.rcParams["pdf.fonttype"] == before  # the style is a context, not global

    info = _poppler("pdfinfo", out)
    size = next(line for line in info.splitlines() if line.startswith("Page size"))
    width, height = (float(v) for v in size.split(":")[1].split("pts")[0].split(" x "))
    assert (round(width), round(height)) == (595, 842), size
    pages = int(next(ln for ln in info.splitlines() if ln.startswith("Pages")).split()[-1])
    assert pages >= 4  # figure, key figures, parameters, bench and calibration

    fonts = _poppler("pdffonts", out).splitlines()[2:]
    assert fonts, "no embedded font"
    assert not [f for f in fonts if "Type 3" in f], fonts
    assert all("TrueType" in f for f in fonts), fonts

    text = _poppler("pdftotext", out)
    assert SAMPLE in text and "pixel 2" in text and f"({name})" in text
    assert "SIMULATED" in text
    assert "Bench and calibration" in text and "Key figures" in text
    assert "sha256" in text


def test_png_report_and_title(run_files, tmp_path):
    from perovlab_daq.figures.report import read_report_info, report_title

    out = tmp_path / "jlv.png"
    assert main(["report", str(run_files["jlv"]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = read_report_info(run_files["jlv"], "jlv")
    title = report_title(info)
    assert title.startswith(f"sample {SAMPLE} | pixel 2 | J-L-V sweep (jlv) | 20")
    assert info.simulated is True


def test_every_labelled_plot_has_a_legend(run_files):
    from matplotlib.figure import Figure

    from perovlab_daq.figures import FIGURES, load_run
    from perovlab_daq.figures.report import draw_run_page, read_report_info

    for name, path in run_files.items():
        procedure, run = load_run(path)
        figure = Figure(figsize=(11, 8.5), layout="constrained")
        draw_run_page(FIGURES[procedure], run, read_report_info(path, procedure), figure)
        for axis in figure.get_axes():
            twins = [a for a in figure.get_axes() if a.bbox.bounds == axis.bbox.bounds]
            labelled = [label for label in axis.get_legend_handles_labels()[1] if label]
            if labelled:
                assert any(a.get_legend() is not None for a in twins), (name, axis.get_title())
            if axis.has_data():  # axis labels (with units, see each module) on every plot
                assert axis.get_ylabel(), (name, axis.get_title())
                assert any(a.get_xlabel() for a in twins), (name, axis.get_title())
        run.close()
