"""The text of ``perovlab-daq list``, kept in a cache that follows the sources.

Describing the procedures means importing them, and with them pymeasure (pint, pandas;
pint also loads scipy and dask when they are installed): 1.5-2 s before the first line.
The rendered listing (text and JSON) is therefore stored in the user's cache folder
under a key made of the Python version, pymeasure's installation and the size and modification
time of every source file of the project; any change to a procedure (or to anything it
imports from the project) gives a new key, and the listing is rebuilt from the classes
as before. A cache that cannot be read or written is ignored (the listing is then built
each time). ``PEROVLAB_DAQ_CACHE_DIR`` moves the cache; an empty value turns it off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import perovlab_daq

log = logging.getLogger(__name__)

#: Packages whose ``.py`` files key the cache beside ``perovlab_daq``'s own (found where
#: they are imported from: inside ``perovlab_daq`` when installed, beside it in a checkout).
SOURCE_PACKAGES = ("perovlab_daq.procedures", "perovlab_daq.instruments")


def cache_folder() -> Path | None:
    """Return the cache folder (None when turned off by an empty PEROVLAB_DAQ_CACHE_DIR)."""
    configured = os.environ.get("PEROVLAB_DAQ_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perovlab-daq"


def _pymeasure_stamp() -> str:
    """Where pymeasure is installed and when (an upgrade changes it); importing it is slow."""
    from importlib.util import find_spec

    spec = find_spec("pymeasure")
    if spec is None or spec.origin is None:
        return "?"
    folder = Path(spec.origin).parent
    return f"{folder}|{(folder / '__init__.py').stat().st_mtime_ns}"


def sources_key() -> str:
    """Return a digest of the Python version, pymeasure's installation and the sources."""
    digest = hashlib.sha256(f"{sys.version}|{_pymeasure_stamp()}".encode())
    files = set(Path(perovlab_daq.__file__).resolve().parent.rglob("*.py"))
    for package in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)  # the package's folder, nothing run
        for folder in (spec.submodule_search_locations or []) if spec else []:
            files.update(Path(folder).resolve().rglob("*.py"))
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def render(as_json: bool) -> str:
    """Return the listing of every installed procedure (text or one JSON document)."""
    from perovlab_daq.runner import procedure_classes

    classes = procedure_classes()
    if as_json:
        out = {
            name: {
                "title": cls.TITLE,
                "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
                "required_roles": list(cls.REQUIRED_ROLES),
                "optional_roles": list(cls.OPTIONAL_ROLES),
                "columns": dict(cls.COLUMNS),
                "parameters": cls.parameter_specs(),
            }
            for name, cls in classes.items()
        }
        return json.dumps(out, indent=1, default=str)
    lines = []
    for name, cls in classes.items():
        lines.append(f"{name}: {cls.TITLE}")
        lines.append(
            f"    roles: {', '.join(cls.REQUIRED_ROLES)}"
            + (f" (optional: {', '.join(cls.OPTIONAL_ROLES)})" if cls.OPTIONAL_ROLES else "")
        )
        for attribute, spec in cls.parameter_specs().items():
            units = f" {spec['units']}" if spec["units"] else ""
            if spec.get("minimum") is not None:
                allowed = f"{spec['minimum']:g} to {spec['maximum']:g}{units}"
            elif "choices" in spec:
                allowed = " | ".join(map(str, spec["choices"]))
            else:
                allowed = spec["type"]
            lines.append(
                f"    {attribute:<28} default {spec['default']!s:<10} [{allowed}]  {spec['label']}"
            )
    return "\n".join(lines)


def listing(as_json: bool) -> str:
    """Return the listing, from the cache when the sources have not changed since."""
    folder = cache_folder()
    if folder is None:
        return render(as_json)
    try:
        path = folder / f"list-{sources_key()}.json"
    except OSError as exc:
        log.debug("list cache not used (%s)", exc)
        return render(as_json)
    try:
        cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return str(cached["json" if as_json else "text"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    texts = {"text": render(False), "json": render(True)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("list-*.json"):
            stale.unlink(missing_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(texts), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        log.debug("list cache not written (%s)", exc)
    return texts["json" if as_json else "text"]
