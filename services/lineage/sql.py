"""Raw, read-only SQL over the lineage views, for site admins only.

One SELECT (or WITH ... SELECT) statement, run on its own cursor inside a read-only transaction
(the database has external access off, so no file can be read or written), wrapped in a LIMIT
one past the row cap, and interrupted from a timer thread when it runs past the time limit.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from cairn.kernel.errors import BadRequest, InvalidInput
from cairn.services.lineage.store import LineageStore

MAX_ROWS = 10_000
MAX_SECONDS = 30.0


class QueryTimeout(BadRequest):
    code = "query_timeout"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def check_select(sql: str) -> str:
    """The one statement in ``sql`` if it is a query; anything else is refused before it runs."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise InvalidInput(f"the SQL does not parse: {err}", details={"field": "sql"}) from None
    if len(statements) != 1:
        raise InvalidInput(f"send exactly one statement (got {len(statements)})", details={"field": "sql"})
    if statements[0].type != duckdb.StatementType.SELECT:
        raise InvalidInput(f"only SELECT queries are allowed (got {statements[0].type.name}); "
                           "the lineage database is read-only here", details={"field": "sql"})
    return statements[0].query.strip().rstrip(";")


def run_sql(store: LineageStore, sql: str, *, max_rows: int = 1000, timeout_s: float = 5.0) -> dict[str, Any]:
    """Columns, rows (at most ``max_rows``), whether rows were cut, and the time taken."""
    query = check_select(sql)
    max_rows = max(1, min(max_rows, MAX_ROWS))
    timeout_s = max(0.01, min(timeout_s, MAX_SECONDS))
    cur = store.cursor()
    timer = threading.Timer(timeout_s, cur.interrupt)
    started = time.monotonic()
    try:
        cur.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        cur.execute(f"SELECT * FROM ({query}) AS q LIMIT {max_rows + 1}")
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran past its time limit of {timeout_s:g}s and was stopped; "
                           "narrow it or raise timeout_s (at most 30)", details={"timeout_s": timeout_s}) from None
    except duckdb.Error as err:
        raise InvalidInput(f"the query failed: {err}", details={"field": "sql"}) from None
    finally:
        timer.cancel()
        try:
            cur.execute("ROLLBACK")
        except duckdb.Error:
            pass
        cur.close()
    truncated = len(rows) > max_rows
    return {"columns": columns, "rows": [[_plain(v) for v in row] for row in rows[:max_rows]],
            "row_count": min(len(rows), max_rows), "truncated": truncated, "max_rows": max_rows,
            "seconds": round(time.monotonic() - started, 4)}
