"""Statements: what a government body said, its claims and figures."""

from secevents.server.resources.base import Resource, csv_columns
from secevents.server.resources.statements import queries
from secevents.server.resources.statements.controller import StatementController
from secevents.server.resources.statements.filters import StatementFilters, provide_statement_filters

RESOURCE = Resource(
    collection="statements",
    description="What government bodies said: claims and figures",
    record=queries.RECORD,
    controller=StatementController,
    writes=queries.WRITES,
    export_columns=csv_columns(
        "id",
        "version",
        "title",
        "issuer_id",
        "addressed_to_id",
        "speaker",
        "form",
        "issued.start",
        "issued.end",
        "issued.precision",
        "summary",
        "claims",
        "figures",
        "related_incident_ids",
        "organisations",
        "external_ids",
        "citations",
        "created_at",
        "updated_at",
    ),
    filters=StatementFilters,
    provide_filters=provide_statement_filters,
)
