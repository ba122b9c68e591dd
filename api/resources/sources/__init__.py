"""Sources: the documents records are drawn from, with their text when known."""

from secevents.server.resources.base import Resource, csv_columns
from secevents.server.resources.sources import queries
from secevents.server.resources.sources.controller import SourceController
from secevents.server.resources.sources.filters import SourceFilters, provide_source_filters

RESOURCE = Resource(
    collection="sources",
    description="Documents records are drawn from",
    record=queries.RECORD,
    controller=SourceController,
    writes=queries.WRITES,
    export_columns=csv_columns(
        "id",
        "version",
        "kind",
        "title",
        "url",
        "publisher",
        "published_on",
        "retrieved_at",
        "language",
        "sha256",
        "text",
        "external_ids",
        "created_at",
        "updated_at",
    ),
    filters=SourceFilters,
    provide_filters=provide_source_filters,
)
