"""Key figures and report pictures of run files, dispatched on the file's procedure name.

``perovlab-daq analyze`` and ``perovlab-daq report`` read any file that follows
``docs/hdf5-layout.md`` (ours, or one written by another program), look at
``entry/procedure`` and hand the loaded run to that procedure's module here
(:data:`FIGURES`): ``figures/<procedure>.py`` with ``key_figures(run) -> dict`` and
``draw(run, figure)`` (``docs/architecture.md`` section 6). Those modules read the run
through :mod:`perovlab_daq.figures._run` and compute with :mod:`perovlab_daq.analysis`.
The acceleration-fit report of ``perovlab-daq lifetime-fit`` is
:mod:`perovlab_daq.figures.lifetime_fit`.

This package imports neither the runner nor the CLI: they import it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from perovlab_daq.figures import (
    el_spectra,
    jlv,
    lifetime,
    pl_fluence,
    pl_spectrum,
    pl_stability,
    plqy,
)
from perovlab_daq.figures._run import AnalysisInputError, close
from perovlab_daq.figures.report import write_report
from perovlab_daq.filecheck import DamagedFileError, check_run_file
from perovlab_daq.procedures.registry import UnknownProcedureError, procedure_class

log = logging.getLogger(__name__)

__all__ = [
    "FIGURES",
    "AnalysisInputError",
    "analyse_and_store",
    "analyze_file",
    "analyze_files",
    "default_jobs",
    "draw_report",
    "figures_module",
    "load_run",
    "procedure_name_of",
]

#: Procedure name (``entry/procedure``) -> the module with its ``key_figures`` and ``draw``;
#: one entry per procedure of :data:`procedures.registry.PROCEDURES`.
FIGURES: dict[str, ModuleType] = {
    "el-spectra": el_spectra,
    "jlv": jlv,
    "lifetime": lifetime,
    "pl-fluence": pl_fluence,
    "pl-spectrum": pl_spectrum,
    "pl-stability": pl_stability,
    "plqy": plqy,
}


def figures_module(name: str) -> ModuleType:
    """Return the figures module of the procedure called ``name``.

    Raises
    ------
    AnalysisInputError
        If no installed procedure has that name (the message lists the known ones).
    """
    try:
        procedure_class(name)
    except UnknownProcedureError as exc:
        raise AnalysisInputError(str(exc)) from None
    return FIGURES[str(name)]


def procedure_name_of(path: str | Path) -> str:
    """Return the ``entry/procedure`` name stored in a run file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    AnalysisInputError
        If the file is not HDF5 or has no ``entry/procedure``.
    """
    import h5py

    from perovlab_daq.storage.reader import stored_procedure_name

    file_path = Path(path)
    try:
        check_run_file(file_path)
    except DamagedFileError as exc:
        raise AnalysisInputError(exc.problem) from None
    try:
        with h5py.File(file_path, "r", locking=False) as handle:
            entry = handle.get("entry")
            if entry is None:
                raise AnalysisInputError("no 'entry' group: not a perovlab-daq layout file")
            value = stored_procedure_name(entry)
            if value is None:
                raise AnalysisInputError("no 'entry/procedure': cannot tell which analysis applies")
            return value
    except OSError as exc:
        raise AnalysisInputError(
            f"cannot open as HDF5 ({exc}); a killed run needs 'perovlab-daq recover' first"
        ) from None


def load_run(path: str | Path) -> tuple[str, Any]:
    """Return (procedure name, opened run) for a file; close the run with :func:`close`.

    The file is checked (:func:`~perovlab_daq.filecheck.check_run_file`), opened once and
    read lazily (:class:`~perovlab_daq.storage.reader.OpenRun`): each figures module
    reads only the columns, frames and groups it uses. The procedure, with the stored
    parameters set, is built only if a figure asks for ``run.procedure``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    AnalysisInputError
        If the file names no installed procedure or its layout cannot be loaded.
    """
    from perovlab_daq.storage.errors import StorageError
    from perovlab_daq.storage.header import procedure_from_info
    from perovlab_daq.storage.reader import OpenRun

    file_path = Path(path)
    try:
        check_run_file(file_path)
    except DamagedFileError as exc:
        raise AnalysisInputError(exc.problem) from None
    try:
        run = OpenRun(file_path)
    except (StorageError, OSError) as exc:
        raise AnalysisInputError(
            f"cannot open as HDF5 ({exc}); a killed run needs 'perovlab-daq recover' first"
        ) from None
    try:
        if "entry" not in run.file:
            raise AnalysisInputError("no 'entry' group: not a perovlab-daq layout file")
        name = run.procedure_name
        if name is None:
            raise AnalysisInputError("no 'entry/procedure': cannot tell which analysis applies")
        figures_module(name)
        # The class comes from the registry, never from a name stored in the file.
        cls = procedure_class(name)
    except BaseException:
        close(run)
        raise
    run.procedure_factory = lambda info: procedure_from_info(info, cls, file_path)
    return name, run


def analyze_file(path: str | Path, *, store: bool = True) -> dict[str, Any]:
    """Compute the key figures of a run file (and store them in ``entry/analysis``).

    Parameters
    ----------
    path
        A run file following ``docs/hdf5-layout.md``.
    store
        Write the figures into the file's ``entry/analysis`` (skipped, with a log
        message, when the file is read-only).
    """
    name, run = load_run(path)
    try:
        try:
            figures = dict(figures_module(name).key_figures(run))
        except AnalysisInputError:
            raise
        except (KeyError, ValueError) as exc:
            raise AnalysisInputError(str(exc)) from None
        if store:
            try:
                run.write_analysis(figures)
            except Exception as exc:  # noqa: BLE001 - the figures are printed anyway
                log.warning("%s: figures not stored in the file (%s)", path, exc)
    finally:
        close(run)
    return figures


def _analyze_one(path: str | Path, store: bool) -> dict[str, Any] | Exception:
    """Analyse one file; return its figures, or the input error that stopped it.

    Runs in a worker process of :func:`analyze_files`: the expected errors come back as
    values, so one bad file neither stops the others nor changes the output order.
    """
    try:
        return analyze_file(path, store=store)
    except (FileNotFoundError, AnalysisInputError) as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the others
        log.debug("analysing %s failed", path, exc_info=True)
        return DamagedFileError(path, f"cannot be analysed ({type(exc).__name__}: {exc})")


def default_jobs() -> int:
    """Return the number of worker processes ``analyze`` uses by default: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def analyze_files(
    paths: Sequence[str | Path],
    *,
    store: bool = True,
    jobs: int | None = None,
    scheduler: str | None = None,
) -> Iterator[tuple[str | Path, dict[str, Any] | Exception]]:
    """Analyse many run files in parallel; yield ``(path, figures or error)`` in input order.

    Parameters
    ----------
    paths
        Run files following ``docs/hdf5-layout.md``.
    store
        Write each file's figures into its ``entry/analysis`` (see :func:`analyze_file`).
    jobs
        Worker processes (default :func:`default_jobs`); 1, or a single file, analyses
        in this process.
    scheduler
        Address of a Dask scheduler (``tcp://host:8786``): the files are analysed by
        that cluster's workers instead (``jobs`` is then unused). The workers must have
        perovlab-daq installed and see the files under the same paths.

    Yields
    ------
    tuple
        The path and its figures, or the :class:`FileNotFoundError` /
        :class:`AnalysisInputError` it raised. Any other exception propagates, as it
        does from :func:`analyze_file`.
    """
    if scheduler is not None:
        yield from _analyze_on_cluster(paths, store, scheduler)
        return
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    jobs = min(jobs, len(paths))
    if jobs <= 1:
        for path in paths:
            yield path, _analyze_one(path, store)
        return
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    # Small chunks keep the order streaming and the cores evenly loaded; each file's
    # cost is dominated by reading and analysis, not by passing it to a worker.
    chunk = max(1, min(16, len(paths) // (jobs * 8)))
    log.info("analysing %d files with %d worker processes", len(paths), jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_pool_context()) as pool:
        results = pool.map(partial(_analyze_one, store=store), paths, chunksize=chunk)
        yield from zip(paths, results, strict=True)


def _analyze_on_cluster(
    paths: Sequence[str | Path], store: bool, scheduler: str
) -> Iterator[tuple[str | Path, dict[str, Any] | Exception]]:
    """Analyse ``paths`` on the workers of the Dask cluster at ``scheduler``, in input order.

    Raises
    ------
    OSError
        If the scheduler cannot be reached (``TimeoutError`` after 10 s).
    """
    from distributed import Client

    log.info("analysing %d files on the Dask cluster at %s", len(paths), scheduler)
    with Client(scheduler, timeout=10, set_as_default=False) as client:
        futures = client.map(_analyze_one, list(paths), store=store, pure=False)
        for path, future in zip(paths, futures, strict=True):
            yield path, future.result()


def preload() -> None:
    """Import what analysing a file needs (HDF5, the storage reader, the fits).

    Called before the worker processes of :func:`analyze_files` are forked, so they
    start with it loaded instead of each importing it (1-2 s per worker under load).
    """
    import h5py  # noqa: F401
    import scipy.optimize  # noqa: F401

    from perovlab_daq.storage import header, reader  # noqa: F401


def _pool_context() -> Any:
    """Return the multiprocessing context of the analysis workers.

    ``fork`` where the platform has it (the workers inherit the modules :func:`preload`
    loaded; this process holds no open HDF5 file then); elsewhere the platform default,
    whose workers import what they need once each (never once per file).
    """
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    preload()
    return multiprocessing.get_context("fork")


def analyse_and_store(procedure_cls: type, run: Any) -> dict[str, Any]:
    """Compute a finished run's key figures and store them in its ``entry/analysis``.

    Used at the end of every run (runner, GUI). ``procedure_cls`` is the run's procedure
    class; its ``NAME`` selects the figures module (a procedure without one gets ``{}``).
    Never raises: an analysis that fails is recorded as an ``analysis`` error event and
    ``{}`` is returned, so a run is never lost to its analysis.
    """
    module = FIGURES.get(str(getattr(procedure_cls, "NAME", "")))
    if module is None:
        return {}
    try:
        figures = dict(module.key_figures(run))
    except Exception as exc:  # noqa: BLE001 - a failed analysis must not lose the run
        log.error("analysis of %s failed: %s", getattr(run, "data_filename", run), exc)
        try:
            run.add_event("error", "analysis", f"analysis failed: {exc}")
        except Exception:  # noqa: BLE001
            pass
        return {}
    try:
        run.write_analysis(figures)
    except Exception as exc:  # noqa: BLE001
        log.error("could not store the analysis: %s", exc)
    return figures


def draw_report(path: str | Path, output: str | Path) -> Path:
    """Draw a run's report to ``output``; return its path.

    ``.png``: the figure page (title with sample, pixel, procedure, date; ``SIMULATED``
    mark); ``.pdf``: A4 pages with TrueType fonts, the figure page, key figures,
    parameters, bench and calibration (:mod:`perovlab_daq.figures.report`).
    """
    out = Path(output)
    if out.suffix.lower() not in {".png", ".pdf"}:
        raise AnalysisInputError(f"report output {str(out)!r} must end in .png or .pdf")
    name, run = load_run(path)
    try:
        write_report(path, out, name, figures_module(name), run)
    except (KeyError, ValueError) as exc:
        raise AnalysisInputError(str(exc)) from None
    finally:
        close(run)
    return out
