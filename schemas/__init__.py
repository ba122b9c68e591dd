"""msgspec Structs of the secevents v1 API, shared by the server and the SDK.

Imports nothing from ``api/``: installing the SDK does not install the server.
"""

from secevents.schemas.changes import Change, ChangePage
from secevents.schemas.common import Citation, CitationIn, DateSpan, DateSpanIn, Estimate, EstimateIn
from secevents.schemas.health import Health
from secevents.schemas.incidents import (
    Casualties,
    CasualtiesIn,
    CasualtyBreakdown,
    CasualtyBreakdownIn,
    Incident,
    IncidentCreate,
    IncidentPage,
    IncidentPatch,
    Location,
    LocationIn,
    Participant,
    ParticipantIn,
)
from secevents.schemas.keys import ApiKeyCreated, ApiKeyInfo
from secevents.schemas.organisations import (
    Organisation,
    OrganisationCreate,
    OrganisationPage,
    OrganisationPatch,
    Relationship,
    RelationshipIn,
)
from secevents.schemas.problems import FieldError, Problem
from secevents.schemas.revisions import Revision, RevisionPage
from secevents.schemas.sources import Source, SourceCreate, SourcePage, SourcePatch
from secevents.schemas.statements import (
    Claim,
    ClaimIn,
    Figure,
    FigureIn,
    Statement,
    StatementCreate,
    StatementOrganisation,
    StatementPage,
    StatementPatch,
)

__all__ = [
    "ApiKeyCreated",
    "ApiKeyInfo",
    "Casualties",
    "CasualtiesIn",
    "CasualtyBreakdown",
    "CasualtyBreakdownIn",
    "Change",
    "ChangePage",
    "Citation",
    "CitationIn",
    "Claim",
    "ClaimIn",
    "DateSpan",
    "DateSpanIn",
    "Estimate",
    "EstimateIn",
    "FieldError",
    "Figure",
    "FigureIn",
    "Health",
    "Incident",
    "IncidentCreate",
    "IncidentPage",
    "IncidentPatch",
    "Location",
    "LocationIn",
    "Organisation",
    "OrganisationCreate",
    "OrganisationPage",
    "OrganisationPatch",
    "Participant",
    "ParticipantIn",
    "Problem",
    "Relationship",
    "RelationshipIn",
    "Revision",
    "RevisionPage",
    "Source",
    "SourceCreate",
    "SourcePage",
    "SourcePatch",
    "Statement",
    "StatementCreate",
    "StatementOrganisation",
    "StatementPage",
    "StatementPatch",
]
