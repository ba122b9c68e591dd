// The page's state lives in the URL, so a view can be shared: the list filters under the API's
// own parameter names, plus `tab` and `record` (e.g. `record=incident:<id>`).

const LISTS = ["country", "type", "organisation"];
const SINGLES = ["occurred_after", "occurred_before", "q"];
export const TABS = ["incidents", "statements", "organisations"];
export const KINDS = ["incident", "statement", "organisation"];

export function emptyFilters() {
  return { occurred_after: "", occurred_before: "", q: "", country: [], type: [], organisation: [] };
}

export function fromUrl(search = location.search) {
  const params = new URLSearchParams(search);
  const filters = emptyFilters();
  for (const name of SINGLES) filters[name] = params.get(name) ?? "";
  for (const name of LISTS) filters[name] = [...new Set(params.getAll(name).filter(Boolean))];
  const tab = TABS.includes(params.get("tab")) ? params.get("tab") : "incidents";
  const match = /^(incident|statement|organisation):([0-9a-f-]{36})$/.exec(params.get("record") ?? "");
  const record = match ? { kind: match[1], id: match[2] } : null;
  return { filters, tab, record };
}

export function toUrl({ filters, tab, record }) {
  const params = new URLSearchParams();
  for (const name of SINGLES) if (filters[name]) params.set(name, filters[name]);
  for (const name of LISTS) for (const value of filters[name]) params.append(name, value);
  if (tab !== "incidents") params.set("tab", tab);
  if (record) params.set("record", `${record.kind}:${record.id}`);
  const qs = params.toString();
  return qs ? `/?${qs}` : "/";
}

/** The filters as `/v1/incidents` and `/v1/incidents/stats` take them. */
export function incidentParams(filters) {
  return {
    occurred_after: filters.occurred_after,
    occurred_before: filters.occurred_before,
    country: filters.country,
    type: filters.type,
    organisation: filters.organisation,
    q: filters.q,
  };
}

/** Statements have no country or type; their dates are `issued_*`. */
export function statementParams(filters) {
  return {
    issued_after: filters.occurred_after,
    issued_before: filters.occurred_before,
    organisation: filters.organisation,
    q: filters.q,
  };
}

export function organisationParams(filters) {
  return { country: filters.country, q: filters.q };
}

export const sameFilters = (a, b) => JSON.stringify(a) === JSON.stringify(b);
