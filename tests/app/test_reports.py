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
from perovlab_daq.procedures import registry

from perovlab_daq.cli import main

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
    # A second pixel of the J-L-V and a second current of the lifetime, to compare.
    for name, extra, pixel in (("jlv", {}, "3"), ("lifetime", {"current_density": 50.0}, "2")):
        plan = plan_run(
            name,
            bench_config=sim_bench(PRESETS[name]),
            parameters={**FAST_PARAMETERS[name], **extra},
            output=out / f"{name}-2",
            sample={"sample": SAMPLE, "pixel": pixel},
        )
        outcome = execute_run(plan)
        assert outcome.status == "finished", (name, outcome.reason)
        files[f"{name}-2"] = outcome.path
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


@needs_poppler
@pytest.mark.parametrize("name", list(FAST_PARAMETERS))
def test_the_whole_title_is_on_every_pdf_page(name, run_files, tmp_path):
    """The title line (sample, pixel, procedure, date) is not cut off at the page's edge.

    At 12 pt (figure page) and 10 pt (table pages) the title of an EL-spectra run is wider
    than A4: the date fell off the right edge of every page.
    """
    from perovlab_daq.figures.report import read_report_info, report_title

    out = tmp_path / f"{name}.pdf"
    assert main(["report", str(run_files[name]), "-o", str(out)]) == 0
    title = " ".join(report_title(read_report_info(run_files[name], name)).split())
    info = _poppler("pdfinfo", out).splitlines()
    pages = int(next(ln for ln in info if ln.startswith("Pages")).split()[-1])
    for page in range(1, pages + 1):
        text = subprocess.run(
            ["pdftotext", "-f", str(page), "-l", str(page), str(out), "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert title in " ".join(text.split()), (page, title, text[:400])


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


def test_no_title_runs_off_the_page(run_files):
    """Plot titles (and the figure's texts) lie inside the A4 page and the PNG picture.

    The PLQY figure's title (PLQY, its interval, absorptance, power density) was centred
    over the left plot and wider than it: its first letters fell off the page's left edge.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from perovlab_daq.figures import FIGURES, load_run
    from perovlab_daq.figures.report import A4_INCHES, draw_run_page, read_report_info

    for name, path in run_files.items():
        procedure, run = load_run(path)
        try:
            for size in (A4_INCHES, (11, 8.5)):
                figure = Figure(figsize=size, layout="constrained")
                draw_run_page(FIGURES[procedure], run, read_report_info(path, procedure), figure)
                canvas = FigureCanvasAgg(figure)
                canvas.draw()
                renderer = canvas.get_renderer()
                page = figure.bbox
                texts = [t for sub in [figure, *figure.subfigs] for t in sub.texts]
                for sub in figure.subfigs:
                    texts += [t for inner in sub.subfigs for t in inner.texts]
                    if sub._suptitle is not None:
                        texts.append(sub._suptitle)
                for axis in figure.get_axes():
                    texts += [axis.title, axis._left_title, axis._right_title]
                for text in texts:
                    if not text.get_visible() or not text.get_text().strip():
                        continue
                    box = text.get_window_extent(renderer)
                    inside = box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1
                    assert inside, (name, size, text.get_text(), box.x0, box.x1, page.x1)
        finally:
            run.close()


# ---------------------------------------------------------------- report --compare (part D)
@needs_poppler
def test_compare_jlv_pixels_pdf(run_files, tmp_path):
    out = tmp_path / "pixels.pdf"
    assert (
        main(
            ["report", "--compare", str(run_files["jlv"]), str(run_files["jlv-2"]), "-o", str(out)]
        )
        == 0
    )
    assert "595" in _poppler("pdfinfo", out)
    assert not [f for f in _poppler("pdffonts", out).splitlines()[2:] if "Type 3" in f]
    text = _poppler("pdftotext", out)
    assert "2 runs" in text and f"{SAMPLE} pixel 2" in text and f"{SAMPLE} pixel 3" in text
    assert "EQE" in text and "SIMULATED" in text


def test_compare_lifetime_currents_png(run_files, tmp_path):
    from perovlab_daq.figures import load_run
    from perovlab_daq.figures.compare import curve_label
    from perovlab_daq.figures.lifetime import key_figures
    from perovlab_daq.figures.report import read_report_info

    out = tmp_path / "currents.png"
    files = [str(run_files["lifetime"]), str(run_files["lifetime-2"])]
    assert main(["report", "--compare", *files, "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    _name, run = load_run(files[1])
    label = curve_label(read_report_info(files[1], "lifetime"), key_figures(run))
    run.close()
    assert label == f"{SAMPLE} pixel 2, 50 mA/cm$^2$"


def test_compare_refuses_mixed_procedures(run_files, tmp_path, capsys):
    out = tmp_path / "mixed.png"
    argv = ["report", "--compare", str(run_files["jlv"]), str(run_files["lifetime"])]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "one procedure" in err and "jlv" in err and "lifetime" in err
    assert not out.exists()
    one = ["report", "--compare", str(run_files["plqy"]), str(run_files["plqy"])]
    assert main([*one, "-o", str(out)]) == 2
    assert "no comparison" in capsys.readouterr().err
    # several files without --compare: bad input, not silently the first one
    assert main(["report", str(run_files["jlv"]), str(run_files["jlv-2"]), "-o", str(out)]) == 2


# ---------------------------------------------------------------- export --csv (part E)
def _read_csv(path):
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_export_csv_tidy_tables_with_units(run_files, tmp_path, capsys):
    from perovlab_daq.storage import RunReader

    path = run_files["jlv"]
    assert main(["export", str(path), "--csv", str(tmp_path / "csv")]) == 0
    stem = path.stem
    folder = tmp_path / "csv"
    printed = capsys.readouterr().out.split()
    assert str(folder / f"{stem}_data.csv") in printed

    reader = RunReader(path)
    data = _read_csv(folder / f"{stem}_data.csv")
    assert "voltage (V)" in data[0] and "current_density (mA/cm^2)" in data[0]
    assert "luminance (cd/m^2)" in data[0] and "sweep_index" in data[0]
    voltage = reader.read_columns(["voltage"])["voltage"]
    assert len(data) - 1 == len(voltage)
    column = data[0].index("voltage (V)")
    assert float(data[1][column]) == pytest.approx(voltage[0])

    spectra = _read_csv(folder / f"{stem}_spectra.csv")
    frames = reader.frames("spectra")
    assert spectra[0][0] == "frame" and spectra[0][-2] == "wavelength (nm)"
    assert spectra[0][-1].startswith("intensity (")
    assert len(spectra) - 1 == len(frames) * frames.wavelength.size  # long format

    figures = {row[0]: row for row in _read_csv(folder / f"{stem}_key_figures.csv")[1:]}
    assert figures["peak_eqe_pct"][2] == "%" and float(figures["peak_eqe_pct"][1]) > 0
    params = {row[0]: row for row in _read_csv(folder / f"{stem}_parameters.csv")[1:]}
    assert params["stop_voltage"][1:] == ["4.0", "V"]
    run = dict(_read_csv(folder / f"{stem}_run.csv")[1:])
    assert run["simulated"] == "true" and run["sample"] == SAMPLE and run["procedure"] == "jlv"
    events = _read_csv(folder / f"{stem}_events.csv")
    assert events[0] == ["time (s)", "timestamp", "level", "kind", "message"]


def test_export_refuses_a_file_that_is_not_a_run(tmp_path, capsys):
    bogus = tmp_path / "x.h5"
    bogus.write_bytes(b"not hdf5" * 100)
    assert main(["export", str(bogus), "--csv", str(tmp_path / "csv")]) == 2
    assert "x.h5" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.h5"), "--csv", str(tmp_path / "c")]) == 2


def test_a_title_of_very_long_identifiers_goes_on_two_readable_lines():
    from perovlab_daq.figures.report import fitted_font_size, fitted_title

    title = " | ".join(
        [f"sample {'S' * 64}", f"device {'D' * 40}", "pixel 3", "EL spectra (el-spectra)"]
        + ["2026-12-03 18:50"]
    )
    text, size = fitted_title(title, 8.0, 12)
    assert text.count("\n") == 1 and " ".join(text.split()) == title
    assert 8.0 <= size <= 12
    assert fitted_font_size(text, 8.0, size) == size  # both lines fit at that size
    short = "sample B12 | pixel 2 | J-L-V sweep (jlv) | 2026-12-03 18:50"
    assert fitted_title(short, 8.0, 12) == (short, 12)
