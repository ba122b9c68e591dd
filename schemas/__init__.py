"""msgspec Structs of the secevents v1 API, shared by the server and the SDK.

Imports nothing from ``api/``: installing the SDK does not install the server.
"""

from schemas.common import Citation, CitationIn, DateSpan, DateSpanIn, Estimate, EstimateIn
from schemas.health import Health
from schemas.incidents import (
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
from schemas.organisations import (
    Organisation,
    OrganisationCreate,
    OrganisationPage,
    OrganisationPatch,
    Relationship,
    RelationshipIn,
)
from schemas.problems import FieldError, Problem
from schemas.sources import Source, SourceCreate, SourcePage, SourcePatch
from schemas.statements import (
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
    "Casualties",
    "CasualtiesIn",
    "CasualtyBreakdown",
    "CasualtyBreakdownIn",
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
