"""Index types the models need beyond Django's portable ``Index``."""

from __future__ import annotations

from django.db import models


class EqualityIndex(models.Index):
    """A hash index on PostgreSQL, a plain index elsewhere, for columns only ever looked up
    with ``=`` / ``IN`` (phone numbers).

    Random keys such as phone numbers land all over a B-tree: inserting a million of them
    cost PostgreSQL ~3 s of a calling-list import's ~12 s (docs/performance.md), a hash index
    a third of that. Hash indexes are crash-safe and replicated since PostgreSQL 10; they
    cannot be unique, cover one column and do not serve ``<``, ``>`` or prefix matches.
    """

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            using = " USING hash"
        return super().create_sql(model, schema_editor, using=using, **kwargs)
