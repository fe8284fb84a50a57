"""Every row of a set of read models, for comparing a live database with a clean rebuild.

Used by the incremental-equals-rebuild test and by `whistleloop chaos`: after any crash, the read
models a runner left must be exactly what a replay from the stream's start builds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from projections.base import Projection

#: What depends on when heads were signed (wall time, batch boundaries), not on the events alone;
#: signed heads themselves are checked by `audit verify`.
WALL_CLOCK = {"audit_state": {"last_head_at", "last_head_size"}}
SKIPPED_TABLES = {"audit_heads"}

Dump = dict[str, list[tuple[Any, ...]]]


def table_dump(engine: Engine, projections: Sequence[Projection]) -> Dump:
    """Every row of every table (wall-clock columns left out, floats to FLOAT_DIGITS), in
    primary-key order."""
    found = {}
    with engine.connect() as conn:
        for projection in projections:
            for table in projection.tables:
                if table.name in SKIPPED_TABLES:
                    continue
                columns = [c for c in table.columns if c.name not in WALL_CLOCK.get(table.name, ())]
                order = list(table.primary_key.columns) or columns
                rows = conn.execute(select(*columns).order_by(*order)).all()
                found[table.name] = [tuple(comparable(value) for value in row) for row in rows]
    return found


#: Significant digits a float keeps in a dump. Sums of durations are floats added batch by batch
#: (stored + this batch's sum), so their last bits depend on where batches began: a live projector
#: and a rebuild agree to ~15 digits, not to the bit (seen in the chaos run: …997998 vs …997994).
FLOAT_DIGITS = 12


def comparable(value: Any) -> Any:
    return float(f"{value:.{FLOAT_DIGITS}g}") if isinstance(value, float) else value


def differences(live: Dump, rebuilt: Dump) -> list[str]:
    """The tables whose rows differ, each with a count of rows only on either side."""
    found = []
    for table in sorted(live.keys() | rebuilt.keys()):
        if live.get(table) == rebuilt.get(table):
            continue
        mine = Counter(map(repr, live.get(table, [])))  # rows may hold lists: compare as text
        theirs = Counter(map(repr, rebuilt.get(table, [])))
        only_live, only_rebuilt = mine - theirs, theirs - mine
        example = next(iter(only_live), "") or next(iter(only_rebuilt), "")
        found.append(
            f"{table}: {sum(only_live.values())} rows only live, "
            f"{sum(only_rebuilt.values())} only rebuilt (e.g. {example[:300]})"
        )
    return found
