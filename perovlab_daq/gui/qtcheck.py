"""Can Qt show a window here? Checked before the QApplication exists (no Qt imported).

Without the X client libraries of Qt's ``xcb`` platform plugin, or without a display,
creating the QApplication aborts the process (``qt.qpa.plugin: Could not load the Qt
platform plugin "xcb"``, SIGABRT, exit code 134) after a page of advice that does not
name the Debian packages. :func:`qt_platform_problem` finds out first, so that
``perovlab-daq gui`` can say in one line what to install and exit with code 2, before any
instrument is opened.

The libraries are the ``NEEDED`` entries of PyQt5 5.15's ``libqxcb.so`` and
``libQt5XcbQpa.so.5`` (``readelf -d``) that a minimal Debian or Ubuntu lacks, with the
package that provides each on Debian 12 (``dpkg -S``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

#: Exit code of ``perovlab-daq gui`` when Qt cannot show a window (as for bad input:
#: nothing was opened).
EXIT_NO_DISPLAY = 2

#: Shared library of the xcb platform plugin -> Debian package.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libGL.so.1": "libgl1",
}

#: What the README tells a lab PC to install (every package of the table).
DEBIAN_PACKAGES = tuple(dict.fromkeys(XCB_LIBRARIES.values()))


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_xcb_packages(loadable: object = _loadable) -> list[str]:
    """Return the Debian packages whose library the xcb plugin needs and cannot load."""
    return list(
        dict.fromkeys(package for soname, package in XCB_LIBRARIES.items() if not loadable(soname))
    )


def qt_platform_problem(
    environ: Mapping[str, str] | None = None, loadable: object = _loadable
) -> str | None:
    """Return one line saying why Qt cannot open a window here, or None if it can.

    Only the default X11 (``xcb``) platform is checked, on Linux; another
    ``QT_QPA_PLATFORM`` (``offscreen``, ``wayland``, ``vnc``...) is the user's choice and
    passes.
    """
    environ = os.environ if environ is None else environ
    platform = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if not sys.platform.startswith("linux") or platform not in ("", "xcb"):
        return None
    missing = missing_xcb_packages(loadable)
    if missing:
        return (
            "the Qt X11 platform plugin cannot load: install the Debian/Ubuntu packages "
            f"{' '.join(missing)} (sudo apt-get install {' '.join(missing)}), "
            "or run headless with QT_QPA_PLATFORM=offscreen"
        )
    if not environ.get("DISPLAY"):
        return (
            "no X display (DISPLAY is not set): run it from the desktop session, with "
            "ssh -X, or under xvfb-run (QT_QPA_PLATFORM=offscreen for no window at all)"
        )
    return None
