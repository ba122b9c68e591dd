"""The resources, each a folder (``resources/<r>/``: descriptor, controller, filters, queries),
listed here once. Everything that covers every resource loops over :data:`ALL`."""

from secevents.schemas.records import RecordType
from secevents.server.resources import incidents, organisations, sources, statements
from secevents.server.resources.base import Resource

ALL: tuple[Resource, ...] = (
    incidents.RESOURCE,
    organisations.RESOURCE,
    statements.RESOURCE,
    sources.RESOURCE,
)
BY_TYPE: dict[RecordType, Resource] = {r.record_type: r for r in ALL}
