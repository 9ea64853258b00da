"""``perovlab-daq runs``: where the catalogue is, and errors in one line with their exit code."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from perovlab_daq.catalog.engine import CatalogError, normalize_url, resolve_url
from perovlab_daq.cli import main


def test_default_catalogue_is_created_in_the_data_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 0, "runs": []}
    assert (tmp_path / "data" / "catalog.sqlite").exists()
    assert main(["runs", "--data", str(tmp_path / "elsewhere")]) == 0
    assert capsys.readouterr().out.strip().endswith("0 run(s)")
    assert (tmp_path / "elsewhere" / "catalog.sqlite").exists()


def test_bench_file_names_the_catalogue(tmp_path, capsys):
    bench = tmp_path / "bench.yaml"
    bench.write_text(
        f"station: lab2\ncatalog: {tmp_path / 'shared.sqlite'}\nsimulated: true\n"
        "roles: {source_meter: {driver: keithley2400}}\n"
    )
    assert main(["runs", "--bench", str(bench), "--json"]) == 0
    assert (tmp_path / "shared.sqlite").exists()


def test_urls():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u:pw@h:5433/db") == "postgresql+psycopg://u:pw@h:5433/db"
    assert normalize_url("relative.sqlite").startswith("sqlite:////")
    assert resolve_url("off") is None and resolve_url(None, data_dir="/x") == (
        "sqlite:////x/catalog.sqlite"
    )
    with pytest.raises(CatalogError, match="only sqlite"):
        normalize_url("mysql://root:secret@h/db")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["runs", "--catalog", "mysql://root:secret@h/db"], 2, "only sqlite"),
        (["runs", "--catalog", "off"], 2, "switched off"),
        (["runs", "--where", "x>1", "--where", "y"], 2, "NAME OP NUMBER"),
        (["runs", "index"], 2, "required"),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, monkeypatch, args, code, words):
    monkeypatch.chdir(tmp_path)
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "secret" not in err


def test_unreachable_catalogue_is_a_failure_in_one_line(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://daq:secret@127.0.0.1:{port}/runs"
    assert main(["runs", "--catalog", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: catalogue postgresql+psycopg://daq:***@127.0.0.1")
    assert "secret" not in err and len(err.strip().splitlines()) == 1
    assert main(["runs", "--catalog", url, "index", str(tmp_path)]) == 1


def test_index_reports_a_missing_path(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    assert main(["runs", "--catalog", url, "index", str(tmp_path / "nothing.h5")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not Path(tmp_path / "nothing.h5").exists()


def test_bench_file_catalog_entry_is_checked(tmp_path, capsys):
    from perovlab_daq.bench import load_bench

    roles = "roles: {source_meter: {driver: keithley2400}}\nsimulated: true\n"
    bench = tmp_path / "bench.yaml"
    bench.write_text("catalog: off\n" + roles)  # YAML 1.1 reads a bare off as false
    assert load_bench(bench).catalog == "off"
    assert resolve_url(None, bench_config=load_bench(bench)) is None
    bench.write_text("catalog: [postgresql://x]\n" + roles)
    assert main(["runs", "--bench", str(bench)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "catalog" in err
