// The list beside the map: incidents, statements or organisations matching the filters, a page
// at a time, following the API's cursor ("More" asks for the next page).

import { get, report } from "./api.js";
import { clear, h } from "./dom.js";
import { estimate, dateSpan, label } from "./words.js";

const PAGE = 50;

const ENDPOINTS = {
  incidents: "/v1/incidents",
  statements: "/v1/statements",
  organisations: "/v1/organisations",
};

function incidentRow(incident, names) {
  const killed = estimate(incident.casualties.killed);
  const where = [incident.location.place, incident.location.admin1, names[incident.location.country] ?? incident.location.country]
    .filter(Boolean)
    .join(", ");
  return [
    h("span", { class: "when" }, dateSpan(incident.occurred)),
    h("strong", { class: "title" }, incident.title),
    h("span", { class: "meta" }, `${label(incident.type)} · ${where}`, killed ? ` · ${killed} killed` : ""),
  ];
}

function statementRow(statement) {
  const issuer = statement.organisations.find((o) => o.role === "issuer");
  return [
    h("span", { class: "when" }, dateSpan(statement.issued)),
    h("strong", { class: "title" }, statement.title),
    h("span", { class: "meta" }, `${label(statement.form)}${issuer ? ` · ${issuer.name}` : ""}`),
  ];
}

function organisationRow(organisation, names) {
  return [
    h("strong", { class: "title" }, organisation.name),
    organisation.aliases.length ? h("span", { class: "aliases" }, `also ${organisation.aliases.join(", ")}`) : null,
    h(
      "span",
      { class: "meta" },
      [label(organisation.kind), organisation.country ? (names[organisation.country] ?? organisation.country) : null, organisation.status]
        .filter(Boolean)
        .join(" · "),
    ),
  ];
}

const KIND_OF_TAB = { incidents: "incident", statements: "statement", organisations: "organisation" };

export class RecordList {
  constructor(el, { names, onSelect }) {
    this.el = el;
    this.names = names;
    this.onSelect = onSelect;
    this.controller = null;
    this.selectedId = null;
  }

  async load(tab, params) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.tab = tab;
    this.params = params;
    clear(this.el);
    this.el.dataset.state = "loading";
    this.el.dataset.tab = tab;
    this.items = h("ol", { class: "items" });
    this.more = h("button", { type: "button", class: "more", hidden: true, onclick: () => this.next() }, "More");
    this.el.append(this.items, this.more);
    await this.fetchPage(null);
  }

  async next() {
    if (this.cursor) await this.fetchPage(this.cursor);
  }

  async fetchPage(cursor) {
    const controller = this.controller;
    this.more.disabled = true;
    try {
      const page = await get(
        ENDPOINTS[this.tab],
        { ...this.params, limit: PAGE, cursor },
        { signal: controller.signal },
      );
      const kind = KIND_OF_TAB[this.tab];
      for (const record of page.data) {
        const row =
          kind === "incident" ? incidentRow(record, this.names) : kind === "statement" ? statementRow(record) : organisationRow(record, this.names);
        const item = h(
          "li",
          { dataset: { id: record.id, kind }, class: record.id === this.selectedId ? "selected" : null },
          h("button", { type: "button", class: "row", onclick: () => this.onSelect({ kind, id: record.id }) }, row),
        );
        this.items.append(item);
      }
      this.cursor = page.next_cursor;
      this.more.hidden = !page.next_cursor;
      this.more.disabled = false;
      const count = this.items.children.length;
      this.el.dataset.count = String(count);
      this.el.dataset.state = "ready";
      if (!count) this.items.append(h("li", { class: "empty" }, "Nothing matches these filters."));
    } catch (error) {
      report(error);
    }
  }

  select(id) {
    this.selectedId = id;
    for (const item of this.items?.children ?? []) item.classList.toggle("selected", item.dataset.id === id);
  }
}
