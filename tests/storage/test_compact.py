"""Compacting a closed run file: same content, order, links and attributes; smaller."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from test_reader import write_run

from perovlab_daq.storage import compact
from perovlab_daq.storage.compact import compact_run_file
from perovlab_daq.testing import write_synthetic_lifetime_run


def _describe(file: h5py.File) -> list[tuple[Any, ...]]:
    """Every object, link and attribute of a file, in iteration order, with values."""
    out: list[tuple[Any, ...]] = []

    def attrs(obj: Any) -> list[tuple[Any, ...]]:
        result = []
        for name in obj.attrs:
            value = obj.attrs[name]
            dtype = obj.attrs.get_id(name).dtype
            result.append((name, str(dtype), repr(np.asarray(value).tolist())))
        return result

    def walk(group: h5py.Group, prefix: str) -> None:
        out.append(("group", prefix, attrs(group)))
        for name in group:
            link = group.get(name, getlink=True)
            path = f"{prefix}/{name}"
            if isinstance(link, h5py.SoftLink):
                out.append(("soft", path, link.path))
                continue
            item = group[name]
            if isinstance(item, h5py.Group):
                walk(item, path)
            else:
                values = item[()] if item.shape is not None else None
                out.append(
                    (
                        "dataset",
                        path,
                        str(item.dtype),
                        item.shape,
                        item.maxshape,
                        item.chunks,
                        repr(np.asarray(values).tolist()),
                        attrs(item),
                    )
                )

    walk(file, "")
    return out


def test_a_compacted_file_has_the_same_content_in_the_same_order(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(compact, "COMPACT_UP_TO_BYTES", -1)  # closed with its live layout
    original = write_run(tmp_path / "run.h5", rows=40, frames=9)
    with h5py.File(original, "a") as file:  # links a run file may carry
        file["entry/alias"] = h5py.SoftLink("/entry/data")
        file["entry/same_time"] = file["entry/data/time"]
    live = tmp_path / "live.h5"
    shutil.copyfile(original, live)
    monkeypatch.setattr(compact, "COMPACT_UP_TO_BYTES", 1 << 30)
    before, after = compact_run_file(original)
    assert before == live.stat().st_size and after == original.stat().st_size
    assert after < 0.6 * before
    with h5py.File(live, "r") as old, h5py.File(original, "r") as new:
        assert _describe(new) == _describe(old)
        assert new["entry/same_time"].id == new["entry/data/time"].id  # still one object
        chunked = [
            new[name] for name in ("entry/data/voltage", "entry/spectra/intensity") if name in new
        ]
        assert chunked and all(d.compression == "gzip" for d in chunked)


def test_runs_are_compacted_when_they_close_and_still_read(tmp_path: Path):
    path = write_synthetic_lifetime_run(tmp_path / "life.h5", rows=1000, tau_device_s=2e5)
    with h5py.File(path, "r") as file:
        time = file["entry/data/time"]
        assert time.compression == "gzip" and time.chunks == (1024,)
        assert time.shape == (1000,) and np.all(np.diff(time[:]) > 0)
    assert path.stat().st_size < 150_000  # 158 kB uncompacted, measured
    assert not list(tmp_path.glob(".*compacting"))


def test_a_failed_compaction_leaves_the_file_and_no_temporary(tmp_path: Path, monkeypatch):
    path = write_run(tmp_path / "run.h5")
    data = path.read_bytes()

    def broken(source: h5py.File, target: h5py.File) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compact, "copy_tree", broken)
    with pytest.raises(compact.StorageError, match="compact copy"):
        compact_run_file(path)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_a_large_file_is_left_as_it_is(tmp_path: Path, monkeypatch):
    path = write_run(tmp_path / "run.h5")
    data = path.read_bytes()
    monkeypatch.setattr(compact, "COMPACT_UP_TO_BYTES", len(data) - 1)
    assert compact_run_file(path) is None
    assert path.read_bytes() == data
