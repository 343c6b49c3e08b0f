"""Print a digest of every committed table of a dataset: rows and a hash of their values.

    .venv/bin/python scripts/table_digest.py ROOT

Columns that differ between two runs of the same input by design (`run_id`, the
discovery time) are left out, and rows are sorted by primary key, so two datasets
built from the same input by the same code print the same lines. Used to check that
a refactoring changes no id and no value (issue 11).
"""

from __future__ import annotations

import hashlib
import sys

from speechmill.schemas import TABLES
from speechmill.store import Store, connect

VOLATILE = {"run_id", "discovered_at"}


def digest(root: str) -> list[str]:
    con = connect(Store(root))
    out = []
    try:
        for name, spec in sorted(TABLES.items()):
            if name == "runs":
                continue
            cols = [c.name for c in spec.columns if c.name not in VOLATILE]
            order = ", ".join(f'"{k}"' for k in spec.primary_key)
            select = ", ".join(f'"{c}"' for c in cols)
            rows = con.execute(f'SELECT {select} FROM "{name}" ORDER BY {order}').fetchall()
            h = hashlib.sha256(repr(rows).encode("utf-8", "backslashreplace")).hexdigest()[:16]
            out.append(f"{name:12s} {len(rows):6d} rows  {h}")
    finally:
        con.close()
    return out


if __name__ == "__main__":
    print("\n".join(digest(sys.argv[1])))
