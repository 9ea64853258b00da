"""Shared by the malformed-input corpus and the fuzz tests: files to feed the command line.

Each builder writes one malformed input under a folder and returns the argv that feeds it
to ``perovlab-daq``. ``damaged_copies`` derives damaged run files from a good one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

FAST_JLV = ["--set", "stop_voltage=4", "--set", "fine_step=0.2", "--set", "coarse_step=0.5"]

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def fifo(folder: Path, name: str = "pipe.yaml") -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


# --------------------------------------------------------------------------- run files
def _copy(good: Path, folder: Path, name: str) -> Path:
    target = folder / name
    shutil.copyfile(good, target)
    return target


def truncated(good: Path, folder: Path, fraction: float = 0.5) -> Path:
    data = good.read_bytes()
    return write(folder, "truncated.h5", data[: int(len(data) * fraction)])


def flipped(good: Path, folder: Path, offsets: list[int], name: str = "flipped.h5") -> Path:
    data = bytearray(good.read_bytes())
    for offset in offsets:
        data[offset % len(data)] ^= 0xFF
    return write(folder, name, bytes(data))


def edited(good: Path, folder: Path, name: str, edit: Callable[[h5py.File], None]) -> Path:
    target = _copy(good, folder, name)
    with h5py.File(target, "r+", locking=False) as handle:
        edit(handle)
    return target


def first_dataset(handle: h5py.File, under: str = "entry") -> str:
    found: list[str] = []

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and item.ndim >= 1 and not found:
            found.append(name)

    handle[under].visititems(visit)
    return f"{under}/{found[0]}"


def absurd_shape(handle: h5py.File) -> None:
    """Replace a data column by a chunked dataset that declares 10^11 elements."""
    name = first_dataset(handle, "entry/data") if "entry/data" in handle else first_dataset(handle)
    attrs = dict(handle[name].attrs)
    del handle[name]
    dataset = handle.create_dataset(name, shape=(10**11,), dtype="f8", chunks=(1024,))
    for key, value in attrs.items():
        dataset.attrs[key] = value


def wrong_dtype(handle: h5py.File) -> None:
    name = first_dataset(handle, "entry/data") if "entry/data" in handle else first_dataset(handle)
    length = handle[name].shape[0]
    del handle[name]
    handle.create_dataset(name, data=np.array([b"x"] * length))


def procedure_named(value: str) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        entry = handle["entry"]
        if "procedure" in entry:
            del entry["procedure"]
        entry["procedure"] = value
        entry.attrs["procedure"] = value
        entry.attrs["procedure_class"] = f"{value}:Planted"

    return edit


def without(path: str) -> Callable[[h5py.File], None]:
    def edit(handle: h5py.File) -> None:
        del handle[path]

    return edit


_GOOD: dict[str, Path] = {}


def good_run_file(folder: Path) -> Path:
    """Return a small finished J-L-V run file, made once per test session (in ``folder``)."""
    if "jlv" not in _GOOD:
        from perovlab_daq.cli import main

        target = folder / "good.h5"
        assert main(["run", "jlv", "--sim", "-o", str(target), *FAST_JLV]) == 0
        _GOOD["jlv"] = target
    return _GOOD["jlv"]
