// The explorer page at `/`: filter bar, map, timeline, list and record panel, all driven by the
// state in the URL (so a view can be shared, and back/forward work).

import "./style.css";

import { clearCache, get, onAuthNeeded, onError, report, apiKey, setApiKey } from "./api.js";
import { $, clear, h } from "./dom.js";
import { RecordList } from "./list.js";
import { IncidentMap } from "./map.js";
import { RecordPanel } from "./panel.js";
import {
  TABS,
  fromUrl,
  incidentParams,
  organisationParams,
  sameFilters,
  statementParams,
  toUrl,
} from "./state.js";
import { Timeline } from "./timeline.js";
import { TYPES, label } from "./words.js";

// Filled in by the build (scripts/build.mjs): country positions, names and the outlines' URL.
// eslint-disable-next-line no-undef
const GENERATED = __GENERATED__;
const { names, positions } = GENERATED;

let state = fromUrl();
const orgNames = new Map(); // organisation id → name, for the filter chips

const map = new IncidentMap($("#map"), $("#map-note"), {
  positions,
  names,
  outlinesUrl: GENERATED.outlines,
  onSelect: (ref) => select(ref),
  onCountry: (code) => addValue("country", code),
});
const timeline = new Timeline($("#timeline"), {
  onRange: (after, before) => update({ filters: { ...state.filters, occurred_after: after, occurred_before: before } }),
});
const list = new RecordList($("#list"), { names, onSelect: (ref) => select(ref) });
const panel = new RecordPanel($("#record"), {
  names,
  onSelect: (ref) => select(ref),
  onFilterOrganisation: (org) => {
    orgNames.set(org.id, org.name);
    update({ filters: { ...state.filters, organisation: [org.id] }, tab: "incidents", record: null });
  },
});

// ---- errors and the API key -------------------------------------------------------------

const errorBox = $("#error");
onError((error) => {
  if (error.status === 401 || error.status === 403) return; // the key dialog says it
  errorBox.textContent = `Request failed: ${error.message}`;
  errorBox.hidden = false;
});
errorBox.addEventListener("click", () => {
  errorBox.hidden = true;
});

const keyDialog = $("#key-dialog");
onAuthNeeded((status) => {
  $("#key-reason").textContent =
    status === 403
      ? "This API key may not read here: give one with the read scope."
      : "Reads on this server need an API key with the read scope.";
  if (!keyDialog.open) keyDialog.showModal();
});
$("#key-button").addEventListener("click", () => {
  $("#key-reason").textContent = "An API key, if this server's reads are not public.";
  $("#key-input").value = apiKey() ?? "";
  keyDialog.showModal();
});
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const forget = event.submitter?.value === "forget";
  setApiKey(forget ? null : $("#key-input").value.trim());
  $("#key-input").value = "";
  keyDialog.close();
  clearCache();
  refresh(true);
});

// ---- the filter bar ---------------------------------------------------------------------

for (const type of TYPES) $("#f-type").append(h("option", { value: type }, label(type)));
$("#country-list").append(
  ...Object.entries(names).map(([code, name]) => h("option", { value: code }, name)),
);

function addValue(name, value) {
  if (!value || state.filters[name].includes(value)) return;
  update({ filters: { ...state.filters, [name]: [...state.filters[name], value] } });
}
function removeValue(name, value) {
  update({ filters: { ...state.filters, [name]: state.filters[name].filter((v) => v !== value) } });
}

function countryCode(text) {
  const value = text.trim();
  if (/^[A-Za-z]{2}$/.test(value) && names[value.toUpperCase()]) return value.toUpperCase();
  const lower = value.toLowerCase();
  const found = Object.entries(names).find(([, name]) => name.toLowerCase() === lower);
  return found ? found[0] : null;
}

const countryInput = $("#f-country");
function takeCountry() {
  const code = countryCode(countryInput.value);
  if (code) {
    countryInput.value = "";
    countryInput.setCustomValidity("");
    addValue("country", code);
  } else if (countryInput.value.trim()) {
    countryInput.setCustomValidity("Unknown country: use its two-letter code or its name");
    countryInput.reportValidity();
  }
}
countryInput.addEventListener("change", takeCountry);
countryInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    takeCountry();
  }
});
countryInput.addEventListener("input", () => countryInput.setCustomValidity(""));

$("#f-type").addEventListener("change", (event) => {
  addValue("type", event.target.value);
  event.target.value = "";
});

for (const [id, name] of [
  ["#f-after", "occurred_after"],
  ["#f-before", "occurred_before"],
]) {
  $(id).addEventListener("change", (event) => update({ filters: { ...state.filters, [name]: event.target.value } }));
}
const qInput = $("#f-q");
qInput.addEventListener("change", () => update({ filters: { ...state.filters, q: qInput.value.trim() } }));
$("#filters").addEventListener("submit", (event) => event.preventDefault());
$("#f-clear").addEventListener("click", () => update({ filters: fromUrl("").filters }));

// Organisation by name or alias: the organisations list's own `q` (case, accents and typos).
const orgInput = $("#f-org");
const suggestions = $("#org-suggestions");
let orgTimer = null;
let orgController = null;
orgInput.addEventListener("input", () => {
  clearTimeout(orgTimer);
  orgTimer = setTimeout(async () => {
    const text = orgInput.value.trim();
    orgController?.abort();
    if (text.length < 2) {
      suggestions.hidden = true;
      return;
    }
    orgController = new AbortController();
    try {
      const page = await get("/v1/organisations", { q: text, limit: 8 }, { signal: orgController.signal });
      clear(suggestions);
      for (const org of page.data) {
        suggestions.append(
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                dataset: { id: org.id },
                onclick: () => {
                  orgNames.set(org.id, org.name);
                  orgInput.value = "";
                  suggestions.hidden = true;
                  addValue("organisation", org.id);
                },
              },
              h("strong", {}, org.name),
              org.aliases.length ? h("span", { class: "aliases" }, ` ${org.aliases.join(", ")}`) : null,
            ),
          ),
        );
      }
      if (!page.data.length) suggestions.append(h("li", { class: "empty" }, "no organisation by that name or alias"));
      suggestions.hidden = false;
    } catch (error) {
      report(error);
    }
  }, 200);
});
orgInput.addEventListener("keydown", (event) => {
  if (event.key === "Escape") suggestions.hidden = true;
  if (event.key === "Enter") {
    event.preventDefault();
    suggestions.querySelector("button")?.click();
  }
});

function chip(name, value, text) {
  return h(
    "span",
    { class: "chip", dataset: { name, value } },
    text,
    h("button", { type: "button", "aria-label": `remove ${text}`, onclick: () => removeValue(name, value) }, "×"),
  );
}

function renderFilterBar() {
  const f = state.filters;
  $("#f-after").value = f.occurred_after;
  $("#f-before").value = f.occurred_before;
  qInput.value = f.q;
  clear($("#chips-country")).append(...f.country.map((c) => chip("country", c, `${c} ${names[c] ?? ""}`.trim())));
  clear($("#chips-type")).append(...f.type.map((t) => chip("type", t, label(t))));
  clear($("#chips-organisation")).append(...f.organisation.map((id) => chip("organisation", id, orgNames.get(id) ?? "…")));
  for (const id of f.organisation.filter((id) => !orgNames.has(id))) {
    get(`/v1/organisations/${id}`)
      .then((org) => {
        orgNames.set(id, org.name);
        renderFilterBar();
      })
      .catch(report);
  }
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === state.tab);
  }
}

for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => update({ tab: button.dataset.tab }));
}

// ---- state → views ----------------------------------------------------------------------

function listParams(tab, filters) {
  if (tab === "statements") return statementParams(filters);
  if (tab === "organisations") return organisationParams(filters);
  return incidentParams(filters);
}

let shown = null; // what the views show now: {filters, tab, record}

function refresh(force = false) {
  renderFilterBar();
  const filtersChanged = force || !shown || !sameFilters(shown.filters, state.filters);
  if (filtersChanged) {
    const params = incidentParams(state.filters);
    const countries = state.filters.country;
    const newCountries = !shown || JSON.stringify(shown.filters.country) !== JSON.stringify(countries);
    map.setFilters(params, newCountries ? countries : null);
    timeline.load(params);
  }
  if (filtersChanged || shown.tab !== state.tab) list.load(state.tab, listParams(state.tab, state.filters));
  const recordChanged = force || !shown || JSON.stringify(shown.record) !== JSON.stringify(state.record);
  if (recordChanged) {
    list.select(state.record?.id ?? null);
    document.body.classList.toggle("with-record", Boolean(state.record));
    panel.show(state.record).then((record) => {
      map.showIncident(state.record?.kind === "incident" ? record : null);
    });
    map.invalidate();
  }
  shown = { ...state };
}

function update(change) {
  state = { ...state, ...change };
  const url = toUrl(state);
  if (url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
  refresh();
}

function select(ref) {
  update({ record: ref });
}

window.addEventListener("popstate", () => {
  state = fromUrl();
  refresh();
});

if (!TABS.includes(state.tab)) state.tab = "incidents";
refresh();
