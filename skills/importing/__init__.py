"""Calling-list import: a CSV/TXT/XLSX file -> records and destinations of a calling list.

``readers`` (file types, encodings, file-level errors) -> ``mapping`` and ``fields`` (columns to
system or typed custom fields) -> ``normalise`` (rows to staged records; runs in worker
processes) with ``phones`` (E.164, fast path) and ``zones`` (TimeZone column, ZIP, number) ->
``service`` (staging table, one-transaction commit, progress, cancel) -> ``report`` (the error
report CSV). ``skills.tasks`` runs it in the background; ``manage.py import_list`` in the shell.
"""
