"""Organisations: armed groups, government bodies, media… with aliases and relationships."""

from secevents.server.resources.base import Resource, csv_columns
from secevents.server.resources.organisations import queries
from secevents.server.resources.organisations.controller import OrganisationController
from secevents.server.resources.organisations.filters import OrganisationFilters, provide_organisation_filters

RESOURCE = Resource(
    collection="organisations",
    description="Armed groups, government bodies, media… with aliases",
    record=queries.RECORD,
    controller=OrganisationController,
    writes=queries.WRITES,
    export_columns=csv_columns(
        "id",
        "version",
        "name",
        "aliases",
        "kind",
        "country",
        "status",
        "description",
        "relationships",
        "external_ids",
        "citations",
        "created_at",
        "updated_at",
    ),
    filters=OrganisationFilters,
    provide_filters=provide_organisation_filters,
)
