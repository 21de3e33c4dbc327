"""Hot-path SQL on PostgreSQL: server-side prepared statements.

Django binds parameters on the client (psycopg's ``ClientCursor``), so PostgreSQL parses and
plans every statement again. For the few statements run once per carrier callback that is a
large share of the database's CPU; :func:`execute_prepared` runs them through a plain psycopg
cursor on Django's own connection (same transaction, same autocommit state), prepared on first
use and reused by every later call on that connection.

``DATABASE_PREPARED_STATEMENTS=false`` turns that off, for a transaction-mode connection pooler
that cannot keep a session's prepared statements (PgBouncer before 1.21, or without
``max_prepared_statements``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.conf import settings
from django.db import connection

_ONLY_WHEN_ASKED = 2**31 - 1  # psycopg's automatic preparing after N runs: never, in effect


def execute_prepared(sql: str, params: Mapping | Sequence, *, fetch: bool = True) -> list[tuple]:
    """Run ``sql`` (psycopg placeholders, PostgreSQL only) prepared; returns its rows (none
    when ``fetch`` is false: a statement without RETURNING).

    Write casts for parameters whose type PostgreSQL cannot infer (``%(x)s::text``): the
    values are sent apart from the statement. Errors come out as Django's database errors.
    """
    import psycopg  # here, not at the top: only PostgreSQL runs this, and SQLite never loads it

    connection.ensure_connection()
    raw = connection.connection
    prepare = getattr(settings, "DATABASE_PREPARED_STATEMENTS", True)
    if prepare and raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (for transaction-mode poolers); Django's own
        # client-side-binding cursors never prepare anyway, so this reaches only these
        # statements, which ask for it.
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.execute(sql, params, prepare=bool(prepare))
        return cursor.fetchall() if fetch else []
