"""``perovlab-daq --help`` and ``list`` start without the heavy libraries (issue 21).

Behaviour, not timing: in a fresh interpreter, the modules these commands load are
listed and none of the scientific, plotting, GUI, HDF5 or pymeasure stacks may be among
them (each costs 0.1-1.5 s to import). ``list`` builds its text from the procedure
classes once and then answers from its cache (:mod:`perovlab_daq.cli._listing`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Top-level packages that must not be imported to print help or the procedure list.
HEAVY = ("scipy", "matplotlib", "colour", "pyqtgraph", "PyQt5", "h5py", "pandas", "pymeasure")

_PROBE = """
import json, sys
from perovlab_daq.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(args: list[str], cache: Path) -> tuple[int, set[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEROVLAB_DAQ_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    output, _sep, tail = done.stdout.rpartition("\nMODULES ")
    found = json.loads(tail)
    return found["code"], {m.split(".")[0] for m in found["modules"]}, output


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"]])
def test_help_and_list_do_not_import_heavy_libraries(args: list[str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first_code, _first, first_out = loaded_by(args, cache)  # list fills its cache
    code, top_level, output = loaded_by(args, cache)
    assert code == first_code == 0
    assert output == first_out and output.strip()
    assert sorted(set(HEAVY) & top_level) == []


def test_list_cache_follows_the_sources(tmp_path: Path) -> None:
    from perovlab_daq.cli import _listing

    key = _listing.sources_key()
    assert key == _listing.sources_key()
    source = Path(_listing.__file__)  # the copy this process imports (installed or not)
    stat = source.stat()
    try:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert _listing.sources_key() != key
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _listing.sources_key() == key


def test_list_without_a_usable_cache_builds_the_listing(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    code_blocked, _mods, text_blocked = loaded_by(["list"], blocked / "cache")
    code_fresh, _mods, text_fresh = loaded_by(["list"], tmp_path / "fresh")
    assert code_blocked == code_fresh == 0
    assert text_blocked == text_fresh and "jlv:" in text_fresh


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1"])
def test_a_stop_signal_during_start_up_exits_130(name: str, tmp_path: Path) -> None:
    """Before a run's own handlers exist (imports), a stop signal still ends with 130.

    Without the command line's early handler the process died by the signal's default
    action (exit -15, -1, -3, -10 here): not the documented code.
    """
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEROVLAB_DAQ_CACHE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "perovlab_daq", "run", "lifetime", "--sim", "-o", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)  # the interpreter is up, the scientific stack still importing
    process.send_signal(getattr(signal, name))
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-500:]
    assert f"{name}: interrupted" in err or "stopping safely" in err, err[-500:]
    if f"{name}: interrupted (no run going)" in err:
        assert not list(tmp_path.glob("*.h5"))  # nothing had started
