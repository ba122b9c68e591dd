"""Statements' documents: the record, its claims and figures (each with its citations), the
incidents it relates to, the organisations it involves (issuer, addressee, those its claims
mention, each with its name) and its citations."""

from __future__ import annotations

import asyncpg

from secevents.schemas.common import DateSpan
from secevents.schemas.statements import Claim, Figure, Statement, StatementOrganisation
from secevents.server.sql.documents.shape import citations, external_ids, number, span

ROWS = """
SELECT s.id, s.version, s.title, s.issuer_id, s.addressed_to_id, s.speaker, s.form,
       s.issued_start, s.issued_end, s.issued_precision, s.summary, s.external_ids,
       s.created_at, s.updated_at,
       ARRAY(SELECT ROW(c.text, c.topics,
                        ARRAY(SELECT co.organisation_id FROM claim_organisations co
                               WHERE co.claim_id = c.id ORDER BY co.ordinal),
                        ARRAY(SELECT ROW(ct.source_id, ct.quote) FROM citations ct
                               WHERE ct.claim_id = c.id ORDER BY ct.ordinal))
               FROM statement_claims c WHERE c.statement_id = s.id ORDER BY c.ordinal) AS claims,
       ARRAY(SELECT ROW(f.label, f.value, f.unit, f.period_start, f.period_end, f.period_precision,
                        ARRAY(SELECT ROW(ct.source_id, ct.quote) FROM citations ct
                               WHERE ct.figure_id = f.id ORDER BY ct.ordinal))
               FROM statement_figures f WHERE f.statement_id = s.id ORDER BY f.ordinal) AS figures,
       ARRAY(SELECT si.incident_id FROM statement_incidents si
              WHERE si.statement_id = s.id ORDER BY si.ordinal) AS related_incident_ids,
       ARRAY(SELECT ROW(x.organisation_id, o.name, x.role)
               FROM (SELECT s.issuer_id AS organisation_id, 'issuer'::text AS role, 0 AS rank, 0 AS ordinal
                     UNION ALL
                     SELECT s.addressed_to_id, 'addressed_to', 1, 0 WHERE s.addressed_to_id IS NOT NULL
                     UNION ALL
                     SELECT m.organisation_id, 'mentioned', 2, min(c.ordinal * 1000 + m.ordinal)
                       FROM statement_claims c JOIN claim_organisations m ON m.claim_id = c.id
                      WHERE c.statement_id = s.id GROUP BY m.organisation_id) x
               JOIN organisations o ON o.id = x.organisation_id
              ORDER BY x.rank, x.ordinal) AS organisations,
       ARRAY(SELECT ROW(c.source_id, c.quote)
               FROM citations c WHERE c.statement_id = s.id ORDER BY c.ordinal) AS citations
  FROM statements s WHERE s.id = ANY($1::uuid[])
"""

EMBEDDED_ORGANISATIONS = (
    "SELECT organisation_id FROM statement_organisations WHERE statement_id = ANY($1::uuid[])"
)


def build(r: asyncpg.Record) -> Statement:
    return Statement(
        id=r["id"],
        version=r["version"],
        title=r["title"],
        issuer_id=r["issuer_id"],
        addressed_to_id=r["addressed_to_id"],
        speaker=r["speaker"],
        form=r["form"],
        issued=DateSpan(start=r["issued_start"], end=r["issued_end"], precision=r["issued_precision"]),
        summary=r["summary"],
        claims=[
            Claim(text=c[0], topics=list(c[1]), organisation_ids=list(c[2]), citations=citations(c[3]))
            for c in r["claims"]
        ],
        figures=[
            Figure(
                label=f[0],
                value=number(f[1]),
                unit=f[2],
                period=span(f[3], f[4], f[5]),
                citations=citations(f[6]),
            )
            for f in r["figures"]
        ],
        related_incident_ids=list(r["related_incident_ids"]),
        organisations=[
            StatementOrganisation(organisation_id=x[0], name=x[1], role=x[2]) for x in r["organisations"]
        ],
        external_ids=external_ids(r["external_ids"]),
        citations=citations(r["citations"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )
