"""NDJSON import of records in the API's own shapes (see :mod:`secevents.schemas.imports`).

One pass over the input: each line is validated by the same Structs as the API, turned into
rows and COPYed in batches into temporary staging tables (memory stays flat in input size).
Then SQL checks what a Struct cannot — references to records in the file or the database,
quotes against source texts, ids and unique external ids already taken, country codes — and
reports each problem by line. Only when nothing is wrong are the rows moved into the real
tables with ``INSERT … SELECT`` and one revision per record written. Incidents' revision
documents are rendered in Python batch by batch (:class:`documents.IncidentDocuments`) and
staged with the rows, so the database only stores them.

The package, by job: :mod:`.rows` (validating lines and staging them in batches), :mod:`.sql`
(the statements that check and write the staged rows) and :mod:`.load` (the import, in order).
"""

from secevents.server.importers.ndjson.load import file_chunks, import_lines

__all__ = ["file_chunks", "import_lines"]
