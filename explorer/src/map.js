// The map: country outlines shipped with the page (no tile server), the matching incidents in
// view clustered on the client, and the incidents without coordinates shown at their country.
//
// The map asks only for what it shows: the incidents inside the visible bounding box, at most
// MAX_POINTS of them (the most recent first), so it stays fast over a million incidents. What
// has no coordinates is counted per country by two stats requests (every match, and the
// matches that have a point anywhere): the difference is drawn at the country's position.

import L from "leaflet";
import "leaflet/dist/leaflet.css";
import Supercluster from "supercluster";

import { get, report } from "./api.js";
import { bestOf, estimate, number } from "./words.js";

// Whole incident documents (about 1.8 KB each for UCDP events): a few hundred per view.
const MAX_POINTS = 300;
const WORLD = "-180,-90,180,90";

const killedClass = (killed) =>
  killed >= 200 ? "k4" : killed >= 50 ? "k3" : killed >= 10 ? "k2" : killed >= 1 ? "k1" : "k0";
const KILLED_COLOURS = { k0: "#8a8f98", k1: "#f2b134", k2: "#ef7b2d", k3: "#d7301f", k4: "#7f0000" };
const sizeClass = (count) => (count >= 1000 ? "s4" : count >= 100 ? "s3" : count >= 10 ? "s2" : "s1");

function bboxOf(bounds) {
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  if (bounds.getEast() - bounds.getWest() >= 360) {
    return [-180, clamp(bounds.getSouth(), -90, 90), 180, clamp(bounds.getNorth(), -90, 90)];
  }
  return [
    clamp(bounds.getWest(), -180, 180),
    clamp(bounds.getSouth(), -90, 90),
    clamp(bounds.getEast(), -180, 180),
    clamp(bounds.getNorth(), -90, 90),
  ].map((v) => Math.round(v * 1e4) / 1e4);
}

const contains = (outer, inner) =>
  outer[0] <= inner[0] && outer[1] <= inner[1] && outer[2] >= inner[2] && outer[3] >= inner[3];

export class IncidentMap {
  constructor(el, note, { positions, names, outlinesUrl, onSelect, onCountry }) {
    this.el = el;
    this.note = note;
    this.positions = positions;
    this.names = names;
    this.onSelect = onSelect;
    this.onCountry = onCountry;
    this.params = null;
    this.loaded = null; // {params, bbox, complete, features}
    this.controller = null;
    this.statsController = null;
    this.timer = null;

    this.map = L.map(el, { preferCanvas: true, minZoom: 1, maxZoom: 13, zoomSnap: 0.5, worldCopyJump: false });
    this.map.attributionControl.setPrefix(false);
    this.map.attributionControl.addAttribution("Outlines: Natural Earth");
    this.map.setView([25, 30], 2);
    this.renderer = L.canvas({ padding: 0.3 });
    this.pointLayer = L.layerGroup().addTo(this.map);
    this.unlocatedLayer = L.layerGroup().addTo(this.map);
    // The selected record is drawn above the clusters (markers are at z-index 600).
    this.map.createPane("selected").style.zIndex = "650";
    this.selectedLayer = L.layerGroup().addTo(this.map);
    this.fitted = false; // the first answer fits the map to the countries with matches
    this.outlines = get(outlinesUrl).then((data) => {
      const layer = L.geoJSON(data, {
        renderer: this.renderer,
        interactive: false,
        style: { color: "#9aa3ad", weight: 0.6, fillColor: "#f4f1ea", fillOpacity: 1 },
      });
      layer.addTo(this.map);
      layer.bringToBack();
      return data;
    }).catch((error) => {
      report(error);
      return { features: [] };
    });
    this.map.on("moveend", () => this.schedule());
  }

  /** New filters: the per-country counts of what has no coordinates, then the points in view
   * (after fitting the view to `fitTo` countries, or, the first time, to where matches are). */
  setFilters(params, fitTo = null) {
    this.params = params;
    this.loaded = null;
    this.loadUnlocated();
    if (fitTo?.length) this.fitCountries(fitTo);
    else if (this.fitted) this.schedule(0);
  }

  /** Fit the view to these countries, then load what is in view. */
  async fitCountries(codes) {
    this.fitted = true;
    const data = await this.outlines;
    const features = data.features.filter((f) => codes.includes(f.properties.code));
    if (features.length) {
      const bounds = L.geoJSON({ type: "FeatureCollection", features }).getBounds();
      this.map.fitBounds(bounds, { maxZoom: 6, animate: false });
    } else if (codes.length && this.positions[codes[0]]) {
      this.map.setView(this.positions[codes[0]], 6, { animate: false });
    }
    this.schedule(0);
  }

  schedule(delay = 150) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.loadPoints(), delay);
  }

  async loadPoints() {
    if (!this.params) return;
    const bbox = bboxOf(this.map.getBounds());
    const loaded = this.loaded;
    if (loaded && loaded.params === this.params && loaded.complete && contains(loaded.bbox, bbox)) {
      this.drawPoints(); // everything in view is already here: only re-cluster
      return;
    }
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.el.dataset.points = "loading";
    try {
      const params = this.params;
      const page = await get(
        "/v1/incidents",
        { ...params, bbox: bbox.join(","), limit: MAX_POINTS },
        { signal: controller.signal },
      );
      const features = page.data
        .filter((i) => i.location.lat != null && i.location.lon != null)
        .map((i) => ({
          type: "Feature",
          geometry: { type: "Point", coordinates: [i.location.lon, i.location.lat] },
          properties: { id: i.id, title: i.title, killed: bestOf(i.casualties.killed), estimate: i.casualties.killed },
        }));
      this.loaded = { params, bbox, complete: page.next_cursor === null, features };
      this.index = new Supercluster({
        radius: 44,
        maxZoom: 12,
        map: (p) => ({ killed: p.killed }),
        reduce: (acc, p) => {
          acc.killed += p.killed;
        },
      });
      this.index.load(features);
      this.drawPoints();
    } catch (error) {
      report(error);
    }
  }

  drawPoints() {
    const { features, complete, bbox } = this.loaded;
    this.pointLayer.clearLayers();
    const zoom = Math.floor(this.map.getZoom());
    for (const c of this.index.getClusters(bbox, zoom)) {
      const [lon, lat] = c.geometry.coordinates;
      const p = c.properties;
      if (p.cluster) {
        const marker = L.marker([lat, lon], {
          icon: L.divIcon({
            className: `cluster ${sizeClass(p.point_count)} ${killedClass(p.killed)}`,
            html: `<span>${p.point_count_abbreviated}</span>`,
            iconSize: null,
          }),
          title: `${number(p.point_count)} incidents, ${number(p.killed)} killed (best)`,
        });
        marker.on("click", () => {
          this.map.setView([lat, lon], Math.min(this.index.getClusterExpansionZoom(p.cluster_id), 13));
        });
        marker.addTo(this.pointLayer);
      } else {
        const k = killedClass(p.killed);
        const marker = L.circleMarker([lat, lon], {
          renderer: this.renderer,
          radius: Math.min(4 + Math.sqrt(p.killed) * 1.3, 18),
          color: "#ffffff",
          weight: 1,
          fillColor: KILLED_COLOURS[k],
          fillOpacity: 0.9,
        });
        const killed = estimate(p.estimate);
        marker.bindTooltip(`${escape(p.title)}${killed ? ` — ${killed} killed` : ""}`);
        marker.on("click", () => this.onSelect({ kind: "incident", id: p.id }));
        marker.addTo(this.pointLayer);
      }
    }
    this.el.dataset.points = String(features.length);
    this.note.textContent = complete
      ? `${number(features.length)} incident${features.length === 1 ? "" : "s"} with coordinates in view.`
      : `The ${number(features.length)} most recent incidents in view (zoom in or filter for the rest).`;
    this.note.dataset.complete = String(complete);
  }

  async loadUnlocated() {
    this.statsController?.abort();
    const controller = new AbortController();
    this.statsController = controller;
    const params = this.params;
    this.el.dataset.unlocated = "loading";
    try {
      const [all, located] = await Promise.all([
        get("/v1/incidents/stats", { ...params, group_by: "country" }, { signal: controller.signal }),
        get("/v1/incidents/stats", { ...params, bbox: WORLD, group_by: "country" }, { signal: controller.signal }),
      ]);
      const withPoint = new Map(located.data.map((g) => [g.country, g]));
      const rows = [];
      for (const g of all.data) {
        const l = withPoint.get(g.country);
        const count = g.incidents - (l?.incidents ?? 0);
        if (count > 0 && this.positions[g.country]) {
          rows.push({ country: g.country, count, killed: (g.killed.best ?? 0) - (l?.killed.best ?? 0) });
        }
      }
      this.drawUnlocated(rows);
      if (!this.fitted) this.fitCountries(all.data.map((g) => g.country));
    } catch (error) {
      report(error);
    }
  }

  drawUnlocated(rows) {
    this.unlocatedLayer.clearLayers();
    for (const row of rows) {
      const name = this.names[row.country] ?? row.country;
      const marker = L.marker(this.positions[row.country], {
        icon: L.divIcon({
          className: `unlocated ${sizeClass(row.count)} ${killedClass(row.killed)}`,
          html: `<span>${number(row.count)}</span>`,
          iconSize: null,
        }),
        title: `${name}: ${number(row.count)} incident${row.count === 1 ? "" : "s"} without coordinates, shown at country level (${number(row.killed)} killed, best)`,
        zIndexOffset: -100,
      });
      marker.on("click", () => this.onCountry(row.country));
      marker.addTo(this.unlocatedLayer);
    }
    this.el.dataset.unlocated = String(rows.reduce((sum, r) => sum + r.count, 0));
    this.el.dataset.unlocatedCountries = rows.map((r) => r.country).join(",");
  }

  /** Mark the selected incident: at its point, or at its country when it has none. */
  showIncident(incident) {
    this.selectedLayer.clearLayers();
    delete this.el.dataset.selected;
    if (!incident) return;
    const { lat, lon, country } = incident.location;
    const located = lat != null && lon != null;
    const at = located ? [lat, lon] : this.positions[country];
    if (!at) return;
    const marker = L.circleMarker(at, {
      renderer: this.renderer,
      pane: "selected",
      radius: 14,
      color: "#1f4e99",
      weight: 3,
      dashArray: located ? null : "4 4",
      fill: false,
      interactive: false,
    });
    marker.bindTooltip(
      located ? incident.title : `${incident.title} — no coordinates: shown at country level (${this.names[country] ?? country})`,
      { permanent: true, direction: "top", offset: [0, -12], className: "selected-tip" },
    );
    marker.addTo(this.selectedLayer);
    this.el.dataset.selected = located ? "point" : "country";
    if (!this.map.getBounds().contains(at)) this.map.setView(at, Math.max(this.map.getZoom(), 4));
  }

  invalidate() {
    this.map.invalidateSize();
  }
}

function escape(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}
