"""DaqWorker: pymeasure's Worker running a procedure into :class:`HDF5Results`.

Differences from :class:`pymeasure.experiment.Worker` (see REFERENCE §5):

* records are routed by topic (docs/architecture.md §5): 'results' and 'batch results'
  rows, 'frame' arrays, 'event' events, 'status' and 'progress' to the monitor queue;
  no CSV ``Recorder`` is started;
* no network port is ever bound, even if one is passed (pymeasure binds ``tcp://*:PORT``
  on every interface when pyzmq is installed);
* a failure stores status ``failed`` with the exception text as reason, and a
  ``shutdown()`` that raises still ends the run with a final status, closes the file and
  releases the monitor queue.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping
from queue import Queue
from typing import Any

from pymeasure.experiment import Procedure, Worker

from perovlab_daq.procedures.base import PROGRESS_STEP

from .errors import StorageError
from .results import HDF5Results, status_string

log = logging.getLogger(__name__)


class DaqWorker(Worker):
    """Run ``results.procedure`` in a thread and store everything it emits in ``results``.

    Parameters
    ----------
    results
        The run's :class:`HDF5Results` (freshly created, not yet started).
    log_queue, log_level
        As for pymeasure's Worker.
    port
        Ignored: this worker never opens a network port.
    """

    #: Smallest change of the progress percentage passed on to the monitor queue (the same
    #: step as ``DaqProcedure.emit_progress``, for procedures that emit progress directly).
    PROGRESS_RESOLUTION = PROGRESS_STEP

    def __init__(
        self,
        results: HDF5Results,
        log_queue: Queue | None = None,
        log_level: int = logging.INFO,
        port: int | None = None,
    ) -> None:
        if not isinstance(results, HDF5Results):
            raise TypeError("DaqWorker needs HDF5Results; use pymeasure's Worker for CSV")
        if port is not None:
            log.warning("DaqWorker never opens a network port; port=%s ignored", port)
        # port=None: pymeasure's Worker creates no ZMQ context and binds nothing.
        super().__init__(results, log_queue=log_queue, log_level=log_level, port=None)
        self.port = None
        self.failure_reason = ""
        self._last_progress = -1.0
        #: Set by :meth:`stop`: a procedure's waits (``DaqProcedure.sleep``) block on it
        #: instead of polling ``should_stop`` many times a second.
        self.stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the run to stop (thread-safe); wakes a procedure waiting in ``sleep`` at once."""
        super().stop()
        self.stop_event.set()

    def emit(self, topic: str, record: Any) -> None:
        """Route one record of the procedure to the storage back end or the monitor."""
        results: HDF5Results = self.results
        if topic == "results":
            results.append_row(record)
        elif topic == "batch results":
            if not isinstance(record, Mapping):
                raise TypeError(f"'batch results' needs a dict of sequences, got {type(record)}")
            results.append_rows(record)
        elif topic == "frame":
            frame = dict(record)
            results.append_frame(
                frame.pop("stream", "spectra"),
                wavelength=frame.pop("wavelength"),
                intensity=frame.pop("intensity"),
                context=frame.pop("context", None),
                units=frame.pop("units", None),
                intensity_units=frame.pop("intensity_units", "counts"),
            )
        elif topic == "event":
            results.add_event(
                record.get("level", "info"), record.get("kind", ""), record.get("message", "")
            )
        elif topic == "status":
            results.set_status(record)
            self.monitor_queue.put((topic, record))
        elif topic == "progress":
            # A sweep reports progress at every point: forward only visible changes, so
            # a 100,000-point run does not push 100,000 items through the monitor queue.
            try:
                value = float(record)
            except (TypeError, ValueError):
                self.monitor_queue.put((topic, record))
                return
            if (
                abs(value - self._last_progress) >= self.PROGRESS_RESOLUTION
                or value in (0.0, 100.0)
            ) and value != self._last_progress:
                self._last_progress = value
                self.monitor_queue.put((topic, record))
        elif topic == "error":
            pass  # the traceback is logged by handle_error; the reason is stored as status
        else:
            log.debug("record of unknown topic %r ignored", topic)

    def handle_error(self) -> None:
        """Store status ``failed`` with the exception text as the reason."""
        error = traceback.sys.exc_info()[1]
        self.failure_reason = f"{type(error).__name__}: {error}" if error else "unknown error"
        log.exception("run failed: %s", self.failure_reason)
        self.results.set_status(Procedure.FAILED, self.failure_reason)
        self.update_status(Procedure.FAILED)

    def handle_abort(self) -> None:
        """Store status ``aborted`` (keyboard interrupt or system exit in the procedure)."""
        log.warning("run aborted by interrupt")
        self.results.set_status(Procedure.ABORTED, "interrupted by the user")
        self.update_status(Procedure.ABORTED)

    def update_status(self, status: int) -> None:
        """Set the procedure status, store it, and tell the monitor."""
        self.procedure.status = status
        self.emit("status", status)

    def shutdown(self) -> None:
        """Run the procedure's shutdown, then close the file with the final status.

        Never raises: a failing ``procedure.shutdown()`` turns a running run into
        ``failed`` (instruments may not be in a safe state) and the file is still closed;
        a storage error while closing also ends the run ``failed``.
        """
        results: HDF5Results = self.results
        try:
            self.procedure.shutdown()
        except Exception as exc:  # noqa: BLE001 - pymeasure stalls if this escapes
            reason = f"procedure shutdown raised {type(exc).__name__}: {exc}"
            log.exception("%s", reason)
            results.add_event("error", "shutdown_failed", reason)
            if self.procedure.status == Procedure.RUNNING:
                results.set_status(Procedure.FAILED, reason)
                self.procedure.status = Procedure.FAILED
        status = self.procedure.status
        if status == Procedure.RUNNING:
            status = Procedure.ABORTED if self.should_stop() else Procedure.FINISHED
        if status == Procedure.ABORTED and not results.status_reason:
            results.set_status(status, "aborted by the user")
        else:
            results.set_status(status)
        try:
            results.close()
        except StorageError as exc:
            log.error("%s", exc)
            status = Procedure.FAILED
            self.failure_reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - the run must still end
            log.exception("closing %s failed", results.data_filename)
            status = Procedure.FAILED
            self.failure_reason = f"closing the run file failed: {exc}"
        final_changed = status != self.procedure.status
        self.procedure.status = status
        if final_changed or status != Procedure.FAILED:
            # FAILED was already announced by handle_error; announce everything else once.
            self.monitor_queue.put(("status", status))
        if status == Procedure.FINISHED:
            self.monitor_queue.put(("progress", 100.0))
        self.monitor_queue.put(None)

    def run(self) -> None:
        """Run startup, execute and shutdown as pymeasure does, without the CSV Recorder."""
        log.info(
            "DaqWorker started: %s -> %s",
            type(self.results.procedure).__name__,
            self.results.data_filename,
        )
        self.procedure = self.results.procedure
        self.procedure.should_stop = self.should_stop
        self.procedure.stop_event = self.stop_event
        self.procedure.emit = self.emit
        self.procedure.is_last = self.is_last
        try:
            self.results.start()
        except StorageError as exc:
            self.failure_reason = str(exc)
            log.error("%s", exc)
            self.procedure.status = Procedure.FAILED
            self.monitor_queue.put(("status", Procedure.FAILED))
            self.monitor_queue.put(None)
            self.stop()
            return
        self.procedure.status = Procedure.RUNNING
        self.results.set_status(Procedure.RUNNING)
        self.monitor_queue.put(("status", Procedure.RUNNING))
        self.monitor_queue.put(("progress", 0.0))
        try:
            self.procedure.startup()
            if self.should_stop():
                return
            self.procedure.evaluate_metadata()
            self.results.store_metadata()
            self.procedure.execute()
        except (KeyboardInterrupt, SystemExit):
            self.handle_abort()
        except Exception:  # noqa: BLE001 - stored as the failure reason
            self.handle_error()
        finally:
            self.shutdown()
            self.stop()

    def is_last(self) -> bool:
        """Return True unless a manager replaces this (pymeasure monkey-patches it)."""
        return True


__all__ = ["DaqWorker", "status_string"]
