"""The installed package: import names, package list, entry points.

The repository keeps ``instruments/``, ``procedures/`` and ``sim_configs/`` at its top level;
they install as ``perovlab_daq.instruments`` and so on, so that a lab's own folder of the same
name (next to its scripts) keeps working, and so does perovlab-daq.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {
    "instruments": "perovlab_daq.instruments",
    "procedures": "perovlab_daq.procedures",
    "sim_configs": "perovlab_daq.sim_configs",
}


def _listed_packages() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}


def _packages_in_tree() -> set[str]:
    found = set()
    for init in (ROOT / "perovlab_daq").rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        found.add(".".join(parts))
    for folder, name in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rest = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rest)))
    return found


def test_setup_cfg_lists_every_package_of_the_tree():
    assert _listed_packages() == _packages_in_tree()


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def test_a_users_own_procedures_folder_wins_and_perovlab_daq_still_runs(tmp_path: Path):
    for name in MAPPED:
        own = tmp_path / name
        own.mkdir()
        (own / "__init__.py").write_text(f"OWNER = 'the lab: {name}'\n")
    script = (
        "import instruments, procedures, sim_configs\n"
        "assert procedures.OWNER == 'the lab: procedures', procedures.__file__\n"
        "assert instruments.OWNER == 'the lab: instruments', instruments.__file__\n"
        "from perovlab_daq.procedures.registry import PROCEDURES\n"
        "assert 'jlv' in PROCEDURES\n"
        "import perovlab_daq.instruments as drivers\n"
        "assert drivers.__name__ == 'perovlab_daq.instruments'\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # The command line from the same folder: its procedures are perovlab-daq's own.
    listed = subprocess.run(
        [sys.executable, "-m", "perovlab_daq", "list"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "lifetime" in listed.stdout and "jlv" in listed.stdout


def test_no_generic_top_level_name_is_installed(tmp_path: Path):
    script = (
        "import importlib.util\n"
        "print([n for n in ('instruments', 'procedures', 'sim_configs')"
        " if importlib.util.find_spec(n) is not None])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_python_dash_m_perovlab_daq_is_the_command_line(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "perovlab_daq", "--help"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: perovlab-daq" in done.stdout


def test_a_run_started_from_the_source_checkout_uses_the_installed_package(tmp_path: Path):
    """README command 1 runs `perovlab-daq` in the checkout: the supervised child must not
    import ./perovlab_daq (which lacks the mapped subpackages of a non-editable install)."""
    script = Path(sys.executable).parent / "perovlab-daq"
    if not script.exists():
        pytest.skip("no perovlab-daq script beside this interpreter")
    done = subprocess.run(
        [str(script), "run", "jlv", "--sim", "-o", str(tmp_path), "--json"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished", summary


def test_the_source_checkout_imports_the_mapped_subpackages_without_any_install():
    """`python -c` / `python -m` from the repository root put ./perovlab_daq first on the
    path, ahead of any installed copy: it must find instruments/, procedures/ and
    sim_configs/ beside itself (site-packages is switched off here with -S, so nothing
    installed can help)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import perovlab_daq.sim_configs as s, perovlab_daq.instruments as i;"
        "print(s.__file__); print(i.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(ROOT)],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sims, instruments = (Path(line) for line in done.stdout.split())
    assert sims == ROOT / "sim_configs" / "__init__.py"
    assert instruments == ROOT / "instruments" / "__init__.py"
