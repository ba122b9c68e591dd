"""Incidents: something that happened, where, who took part, how many were killed or injured."""

from typing import get_args

from secevents.schemas.incidents import CasualtyGroup
from secevents.server.resources.base import Resource, breakdown_columns, csv_columns
from secevents.server.resources.incidents import queries
from secevents.server.resources.incidents.controller import IncidentController
from secevents.server.resources.incidents.filters import IncidentFilters, provide_incident_filters

RESOURCE = Resource(
    collection="incidents",
    description="Things that happened",
    record=queries.RECORD,
    controller=IncidentController,
    writes=queries.WRITES,
    export_columns=csv_columns(
        "id",
        "version",
        "title",
        "summary",
        "type",
        "subtype",
        "occurred.start",
        "occurred.end",
        "occurred.precision",
        "location.country",
        "location.admin1",
        "location.admin2",
        "location.place",
        "location.lat",
        "location.lon",
        "location.precision",
        "casualties.killed.low",
        "casualties.killed.best",
        "casualties.killed.high",
        "casualties.injured.low",
        "casualties.injured.best",
        "casualties.injured.high",
        "casualties.breakdown",
        "participants",
        "external_ids",
        "citations",
        "created_at",
        "updated_at",
        # Added after the first columns, which v1 readers may address by position.
        *breakdown_columns(*get_args(CasualtyGroup)),
    ),
    filters=IncidentFilters,
    provide_filters=provide_incident_filters,
    export_formats=("ndjson", "csv", "geojson", "stix"),
)
