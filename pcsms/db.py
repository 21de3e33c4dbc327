"""Hot-path SQL on PostgreSQL: server-side prepared statements.

Django binds parameters on the client (psycopg's ``ClientCursor``), so PostgreSQL parses and
plans every statement again. For the few statements run once per carrier callback that is a
large share of the database's CPU; :func:`execute_prepared` runs them through a plain psycopg
cursor on Django's own connection (same transaction, same autocommit state), prepared on first
use and reused by every later call on that connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.db import connection


def execute_prepared(sql: str, params: Mapping | Sequence) -> list[tuple]:
    """Run ``sql`` (psycopg placeholders, PostgreSQL only) prepared; returns its rows.

    Write casts for parameters whose type PostgreSQL cannot infer (``%(x)s::text``): the
    values are sent apart from the statement. Errors come out as Django's database errors.
    """
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []
