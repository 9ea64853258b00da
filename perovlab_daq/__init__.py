"""perovlab-daq: acquisition for perovskite LEDs and nanocrystal films.

J-L-V sweeps, operational lifetime runs, EL and PL spectroscopy, streamed into HDF5,
on real instruments or on a physics-backed pyvisa-sim bench.

In the repository, ``instruments/``, ``procedures/`` and ``sim_configs/`` sit beside this
package and install as ``perovlab_daq.instruments`` and so on (setup.cfg ``package_dir``).
When this package is imported straight from a source checkout (``python -m perovlab_daq``
or ``python -c`` run from the repository root, where the current directory comes first on
``sys.path`` and shadows the installed copy), the three subpackages are looked up in those
sibling folders too, so the checkout works exactly as the installed package does.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

_MAPPED_FOLDERS = ("instruments", "procedures", "sim_configs")


def _source_checkout_subpackage_path() -> list[str]:
    """Return the repository root if this is a source checkout with the mapped folders beside it."""
    here = _Path(__file__).resolve().parent
    root = here.parent
    installed = all((here / name).is_dir() for name in _MAPPED_FOLDERS)
    beside = all((root / name / "__init__.py").is_file() for name in _MAPPED_FOLDERS)
    return [str(root)] if beside and not installed else []


# Only the three mapped names are expected from the root entry; everything else of this
# package lives in this folder, which stays first on __path__.
__path__ = [*__path__, *_source_checkout_subpackage_path()]  # noqa: F821
