// The record panel: an incident, statement or organisation with its fields in plain words, its
// organisations (aliases, relationships), every citation inside its source text, and its
// revisions. Sections fill in as their requests answer; `data-state="ready"` once all have.

import { cached, get, report } from "./api.js";
import { citationList } from "./citations.js";
import { clear, h } from "./dom.js";
import { PRECISION_WORDS, dateInferred, dateSpan, estimate, label, number } from "./words.js";

function fields(rows) {
  return h(
    "dl",
    { class: "fields" },
    rows.filter(([, value]) => value !== null && value !== undefined && value !== "").map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
}

function section(title, ...children) {
  return h("section", { class: "part" }, h("h3", {}, title), children);
}

function orgLink(id, name, onSelect) {
  return h("button", { type: "button", class: "link org", dataset: { id }, onclick: () => onSelect({ kind: "organisation", id }) }, name);
}

const RELATIONSHIP_WORDS = {
  branch_of: "branch of",
  splinter_of: "splinter of",
  affiliate_of: "affiliate of",
  allied_with: "allied with",
  rival_of: "rival of",
  part_of: "part of",
  hosted_by: "hosted by",
};

function relationshipItems(organisation, onSelect) {
  return organisation.relationships.map((r) =>
    h(
      "li",
      {},
      `${RELATIONSHIP_WORDS[r.type] ?? label(r.type)} `,
      orgLink(r.organisation_id, r.name || r.organisation_id, onSelect),
      r.since ? ` since ${r.since}` : "",
      r.until ? ` until ${r.until}` : "",
    ),
  );
}

/** A participant or statement organisation, with its aliases and relationships fetched. */
function organisationCard(id, name, role, onSelect) {
  const card = h("li", { class: "org-card" }, orgLink(id, name, onSelect), role ? h("span", { class: "role" }, ` — ${label(role)}`) : null);
  const done = cached(`/v1/organisations/${id}`)
    .then((org) => {
      if (org.aliases.length) card.append(h("div", { class: "aliases" }, `also known as ${org.aliases.join(", ")}`));
      const rels = relationshipItems(org, onSelect);
      if (rels.length) card.append(h("ul", { class: "relationships" }, rels));
    })
    .catch(report);
  return { element: card, done };
}

function revisionsSection(kind, id) {
  const list = h("ol", { class: "revisions" });
  const done = get(`/v1/${kind}s/${id}/revisions`, { limit: 20 })
    .then((page) => {
      for (const r of page.data) {
        const when = r.committed_at.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC").replace("Z", " UTC");
        list.append(h("li", {}, `version ${r.version}: ${r.operation} on ${when} by ${r.actor}`));
      }
      if (page.next_cursor) list.append(h("li", {}, "… older versions through the API"));
    })
    .catch(report);
  return { element: section("Revisions", list), done };
}

function whereWords(location, names) {
  const place = [location.place, location.admin2, location.admin1, names[location.country] ?? location.country].filter(Boolean).join(", ");
  const precision = PRECISION_WORDS[location.precision] ?? location.precision;
  if (location.lat == null || location.lon == null) {
    return `${place} (${precision}; no coordinates: shown on the map at country level)`;
  }
  return `${place} (${precision}; ${location.lat.toFixed(4)}, ${location.lon.toFixed(4)})`;
}

function casualtyRows(casualties) {
  const rows = [];
  const killed = estimate(casualties.killed);
  const injured = estimate(casualties.injured);
  rows.push(["Killed", killed ?? "not reported"]);
  rows.push(["Injured", injured ?? "not reported"]);
  for (const b of casualties.breakdown) {
    const parts = [estimate(b.killed) && `${estimate(b.killed)} killed`, estimate(b.injured) && `${estimate(b.injured)} injured`].filter(Boolean);
    if (parts.length) rows.push([`of them ${label(b.group)}`, parts.join(", ")]);
  }
  return rows;
}

function externalIds(ids) {
  const entries = Object.entries(ids);
  return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join(", ") : null;
}

function incidentPanel(incident, { names, onSelect }) {
  const waits = [];
  const orgs = incident.participants.map((p) => organisationCard(p.organisation_id, p.name, p.role, onSelect));
  waits.push(...orgs.map((o) => o.done));
  const cites = citationList(incident.citations);
  const revisions = revisionsSection("incident", incident.id);
  waits.push(cites.done, revisions.done);
  const element = [
    h("p", { class: "kind" }, `Incident · ${label(incident.type)}${incident.subtype ? ` · ${label(incident.subtype)}` : ""}`),
    h("h2", {}, incident.title),
    fields([
      ["When", dateSpan(incident.occurred, { inferred: dateInferred(incident) })],
      ["Where", whereWords(incident.location, names)],
      ...casualtyRows(incident.casualties),
      ["External ids", externalIds(incident.external_ids)],
    ]),
    incident.summary ? h("p", { class: "summary" }, incident.summary) : null,
    orgs.length ? section("Organisations", h("ul", { class: "orgs" }, orgs.map((o) => o.element))) : null,
    section("Sources", cites.element),
    revisions.element,
  ];
  return { element, done: Promise.all(waits) };
}

function figureValue(figure) {
  return `${number(figure.value)}${figure.unit ? ` ${figure.unit}` : ""}`;
}

function statementPanel(statement, { onSelect }) {
  const waits = [];
  const byId = new Map(statement.organisations.map((o) => [o.organisation_id, o.name]));
  const nameOf = (id) => byId.get(id) ?? id;
  const orgs = statement.organisations.map((o) => organisationCard(o.organisation_id, o.name, o.role, onSelect));
  waits.push(...orgs.map((o) => o.done));

  const claims = statement.claims.map((claim) => {
    const cites = citationList(claim.citations);
    waits.push(cites.done);
    return h(
      "li",
      { class: "claim" },
      h("p", { class: "claim-text" }, claim.text),
      claim.topics.length || claim.organisation_ids.length
        ? h(
            "p",
            { class: "meta" },
            claim.topics.map(label).join(", "),
            claim.topics.length && claim.organisation_ids.length ? " · " : "",
            claim.organisation_ids.map((id, i) => [i ? ", " : "", orgLink(id, nameOf(id), onSelect)]),
          )
        : null,
      cites.element,
    );
  });
  const figures = statement.figures.map((figure) => {
    const cites = citationList(figure.citations);
    waits.push(cites.done);
    return h(
      "li",
      { class: "figure" },
      h("p", {}, h("strong", { class: "value" }, figureValue(figure)), ` — ${figure.label}`, figure.period ? ` (${dateSpan(figure.period)})` : ""),
      cites.element,
    );
  });
  const related = statement.related_incident_ids.map((id) => {
    const item = h("li", {}, h("button", { type: "button", class: "link", onclick: () => onSelect({ kind: "incident", id }) }, id));
    waits.push(
      cached(`/v1/incidents/${id}`)
        .then((incident) => {
          item.firstChild.textContent = `${incident.title} (${dateSpan(incident.occurred)})`;
        })
        .catch(report),
    );
    return item;
  });
  const cites = citationList(statement.citations);
  const revisions = revisionsSection("statement", statement.id);
  waits.push(cites.done, revisions.done);
  const element = [
    h("p", { class: "kind" }, `Statement · ${label(statement.form)}`),
    h("h2", {}, statement.title),
    fields([
      ["Issued", dateSpan(statement.issued, { inferred: dateInferred(statement) })],
      ["By", statement.issuer_id ? orgLink(statement.issuer_id, nameOf(statement.issuer_id), onSelect) : null],
      ["Speaker", statement.speaker],
      ["To", statement.addressed_to_id ? orgLink(statement.addressed_to_id, nameOf(statement.addressed_to_id), onSelect) : null],
    ]),
    statement.summary ? h("p", { class: "summary" }, statement.summary) : null,
    figures.length ? section("Figures", h("ul", { class: "figures" }, figures)) : null,
    claims.length ? section("Claims", h("ol", { class: "claims" }, claims)) : null,
    orgs.length ? section("Organisations", h("ul", { class: "orgs" }, orgs.map((o) => o.element))) : null,
    related.length ? section("Related incidents", h("ul", {}, related)) : null,
    section("Sources", cites.element),
    revisions.element,
  ];
  return { element, done: Promise.all(waits) };
}

function organisationPanel(org, { names, onSelect, onFilterOrganisation }) {
  const waits = [];
  const statements = h("ul", { class: "statements" });
  waits.push(
    get(`/v1/organisations/${org.id}/statements`, { limit: 20 })
      .then((page) => {
        for (const s of page.data) {
          statements.append(h("li", {}, h("button", { type: "button", class: "link", onclick: () => onSelect({ kind: "statement", id: s.id }) }, s.title), ` (${dateSpan(s.issued)})`));
        }
        if (!page.data.length) statements.append(h("li", {}, "none"));
      })
      .catch(report),
  );
  const cites = citationList(org.citations);
  const revisions = revisionsSection("organisation", org.id);
  waits.push(cites.done, revisions.done);
  const rels = relationshipItems(org, onSelect);
  const element = [
    h("p", { class: "kind" }, `Organisation · ${label(org.kind)}`),
    h("h2", {}, org.name),
    fields([
      ["Also known as", org.aliases.join(", ")],
      ["Country", org.country ? (names[org.country] ?? org.country) : null],
      ["Status", org.status],
      ["External ids", externalIds(org.external_ids)],
    ]),
    org.description ? h("p", { class: "summary" }, org.description) : null,
    h("p", {}, h("button", { type: "button", class: "action", onclick: () => onFilterOrganisation(org) }, "Show its incidents")),
    rels.length ? section("Relationships", h("ul", { class: "relationships" }, rels)) : null,
    section("Statements", statements),
    section("Sources", cites.element),
    revisions.element,
  ];
  return { element, done: Promise.all(waits) };
}

const PANELS = { incident: incidentPanel, statement: statementPanel, organisation: organisationPanel };

export class RecordPanel {
  constructor(el, options) {
    this.el = el;
    this.options = options;
    this.token = 0;
  }

  /** Show `{kind, id}`; resolves with the record (or null when closed or replaced). */
  async show(ref) {
    const token = ++this.token;
    clear(this.el);
    if (!ref) {
      this.el.hidden = true;
      delete this.el.dataset.kind;
      delete this.el.dataset.id;
      return null;
    }
    this.el.hidden = false;
    Object.assign(this.el.dataset, { kind: ref.kind, id: ref.id, state: "loading" });
    const close = h("button", { type: "button", class: "close", "aria-label": "Close", onclick: () => this.options.onSelect(null) }, "×");
    this.el.append(close);
    let record;
    try {
      record = await get(`/v1/${ref.kind}s/${ref.id}`);
    } catch (error) {
      if (token === this.token) this.el.append(h("p", { class: "error-inline" }, `Could not load this ${ref.kind}: ${error.message}`));
      report(error);
      return null;
    }
    if (token !== this.token) return null;
    const { element, done } = PANELS[ref.kind](record, this.options);
    this.el.append(...element.filter(Boolean));
    this.el.scrollTop = 0;
    done.then(() => {
      if (token === this.token) this.el.dataset.state = "ready";
    });
    return record;
  }
}
