"""The ``perovlab-daq`` commands ``bench check|presets``, ``list`` and ``gui``.

The bench, the simulated samples, the installed procedures and the operator window.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from perovlab_daq.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    UsageError,
    bench_config_from_args,
    parse_sets,
)

log = logging.getLogger(__name__)


def _cmd_bench_check(args: argparse.Namespace) -> int:
    from perovlab_daq.bench import DEFAULT_REQUIRED_ROLES, Bench

    config = bench_config_from_args(args)
    required = args.require or list(DEFAULT_REQUIRED_ROLES)
    config.require_roles(required)
    bench = Bench(config, procedure=None)
    statuses = bench.check()
    rows = [
        {
            "role": s.role,
            "driver": s.driver,
            "resource": s.resource,
            "identity": s.identity,
            "ok": s.ok,
            "problem": s.problem,
        }
        for s in statuses
    ]
    if args.json:
        print(json.dumps({"bench": config.name, "simulated": config.simulated, "roles": rows}))
    else:
        print(f"bench: {config.name} ({'simulated' if config.simulated else 'real instruments'})")
        width = max(len(r["role"]) for r in rows)
        for r in rows:
            state = r["identity"] if r["ok"] else f"FAILED: {r['problem']}"
            print(f"  {r['role']:<{width}}  {r['driver']:<18} {r['resource']:<40} {state}")
    failures = [s for s in statuses if not s.ok]
    if failures:
        for s in failures:
            print(f"error: {s.problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _cmd_bench_presets(args: argparse.Namespace) -> int:
    from perovlab_daq.sim.presets import PRESETS

    if args.json:
        out = {name: _preset_summary(p) for name, p in PRESETS.items()}
        print(json.dumps(out, indent=1))
        return EXIT_OK
    for name, preset in PRESETS.items():
        summary = _preset_summary(preset)
        print(f"{name}: {summary['description']}")
        for figure in summary["published"]:
            print(
                f"    {figure['quantity']}: {figure['value']:g} {figure['unit']}"
                f"  ({figure['source']})"
            )
        for assumption in summary["assumptions"]:
            print(f"    model choice: {assumption}")
    return EXIT_OK


def _preset_summary(preset: Any) -> dict[str, Any]:
    return {
        "description": preset.description,
        "published": [
            {"quantity": f.quantity, "value": f.value, "unit": f.unit, "source": f.source}
            for f in preset.published
        ],
        "assumptions": list(preset.assumptions),
    }


def _cmd_list(args: argparse.Namespace) -> int:
    from perovlab_daq.runner import procedure_classes

    classes = procedure_classes()
    if args.json:
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
        print(json.dumps(out, indent=1, default=str))
        return EXIT_OK
    for name, cls in classes.items():
        print(f"{name}: {cls.TITLE}")
        print(
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
            print(
                f"    {attribute:<28} default {spec['default']!s:<10} [{allowed}]  {spec['label']}"
            )
    return EXIT_OK


def _cmd_gui(args: argparse.Namespace) -> int:
    from perovlab_daq.gui.app import run_gui

    config = bench_config_from_args(args)
    if args.run and args.screenshot is None:
        raise UsageError("--run is for screenshots: use it with --screenshot OUT.png")
    return run_gui(
        config,
        data_dir=args.output,
        procedure=args.procedure,
        values=parse_sets(args.set),
        screenshot=args.screenshot,
        runs=args.run or [],
    )
