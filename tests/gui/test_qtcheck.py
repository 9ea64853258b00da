"""Without the X libraries or a display, ``perovlab-daq gui`` says what to install (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from perovlab_daq.gui.qtcheck import DEBIAN_PACKAGES, XCB_LIBRARIES, qt_platform_problem

ROOT = Path(__file__).resolve().parents[2]


def test_missing_library_names_its_debian_package():
    absent = {"libxcb-icccm.so.4", "libxkbcommon-x11.so.0"}
    problem = qt_platform_problem({"DISPLAY": ":0"}, loadable=lambda name: name not in absent)
    assert problem is not None and "\n" not in problem
    assert "libxcb-icccm4" in problem and "libxkbcommon-x11-0" in problem
    assert "libxcb-image0" not in problem  # only what is missing
    assert "QT_QPA_PLATFORM=offscreen" in problem


def test_no_display_is_said_and_other_platforms_pass():
    assert "DISPLAY" in qt_platform_problem({}, loadable=lambda name: True)
    assert qt_platform_problem({"DISPLAY": ":0"}, loadable=lambda name: True) is None
    for platform in ("offscreen", "wayland", "vnc:size=1280x800"):
        env = {"QT_QPA_PLATFORM": platform}
        assert qt_platform_problem(env, loadable=lambda name: False) is None


def test_every_library_has_a_package_and_the_readme_lists_them():
    assert all(package.startswith("lib") for package in XCB_LIBRARIES.values())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [package for package in DEBIAN_PACKAGES if package not in readme]
    assert not missing


def test_gui_command_exits_2_with_one_line_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "perovlab_daq.cli", "gui", "--sim", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing was opened or written
