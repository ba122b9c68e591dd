// The timeline: incidents and killed per month from /v1/incidents/stats?group_by=month, with the
// killed estimate's low–high as a band around its best line. Dragging across it picks a date
// range for the filters.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { get, report } from "./api.js";
import { number } from "./words.js";

const HEIGHT = 170;

const monthStart = (year, month) => Date.UTC(year, month - 1, 1) / 1000;

/** Every month from the first to the last with data, so empty months show as gaps of zero. */
export function monthly(groups) {
  const byMonth = new Map(groups.filter((g) => g.month).map((g) => [g.month, g]));
  const keys = [...byMonth.keys()].sort();
  const xs = [];
  const rows = [];
  if (keys.length) {
    let [y, m] = keys[0].split("-").map(Number);
    const [ly, lm] = keys[keys.length - 1].split("-").map(Number);
    while (y < ly || (y === ly && m <= lm)) {
      xs.push(monthStart(y, m));
      rows.push(byMonth.get(`${y}-${String(m).padStart(2, "0")}`) ?? null);
      m += 1;
      if (m > 12) {
        m = 1;
        y += 1;
      }
    }
  }
  return {
    xs,
    incidents: rows.map((g) => g?.incidents ?? 0),
    best: rows.map((g) => g?.killed.best ?? (g ? 0 : 0)),
    low: rows.map((g) => g?.killed.low ?? g?.killed.best ?? 0),
    high: rows.map((g) => g?.killed.high ?? g?.killed.best ?? 0),
  };
}

const isoDate = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 10);
const monthEnd = (seconds) => {
  const d = new Date(seconds * 1000);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).toISOString().slice(0, 10);
};

export class Timeline {
  constructor(el, { onRange }) {
    this.el = el;
    this.onRange = onRange;
    this.plot = null;
    this.controller = null;
    new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: HEIGHT })).observe(el);
  }

  width() {
    return Math.max(this.el.clientWidth, 200);
  }

  async load(params) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.el.dataset.state = "loading";
    try {
      const stats = await get("/v1/incidents/stats", { ...params, group_by: "month" }, { signal: controller.signal });
      this.draw(monthly(stats.data));
    } catch (error) {
      report(error);
    }
  }

  draw(series) {
    this.plot?.destroy();
    this.plot = null;
    const total = series.incidents.reduce((a, b) => a + b, 0);
    this.el.dataset.months = String(series.xs.length);
    this.el.dataset.incidents = String(total);
    this.el.dataset.killed = String(series.best.reduce((a, b) => a + b, 0));
    this.el.dataset.state = "ready";
    if (!series.xs.length) {
      this.el.textContent = "No incidents match.";
      return;
    }
    this.el.textContent = "";
    // A single month would give uPlot a zero-width x range: pad it by a month on each side.
    const xs = series.xs;
    const range = xs.length > 1 ? [xs[0] - 86400 * 15, xs[xs.length - 1] + 86400 * 15] : [xs[0] - 86400 * 31, xs[0] + 86400 * 31];
    const opts = {
      width: this.width(),
      height: HEIGHT,
      cursor: { drag: { x: true, y: false, setScale: false } },
      select: { show: true },
      legend: { show: true, live: true },
      scales: { x: { time: true, range: () => range }, n: { range: (u, min, max) => [0, Math.max(1, max)] }, k: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        {},
        { scale: "n", label: "incidents", size: 46, values: (u, ticks) => ticks.map((t) => number(t)) },
        { scale: "k", label: "killed", side: 1, size: 52, grid: { show: false }, values: (u, ticks) => ticks.map((t) => number(t)) },
      ],
      series: [
        { label: "month", value: (u, v) => (v == null ? "" : new Date(v * 1000).toISOString().slice(0, 7)) },
        {
          label: "incidents",
          scale: "n",
          fill: "rgba(94, 129, 172, 0.55)",
          stroke: "rgba(94, 129, 172, 0.9)",
          paths: uPlot.paths.bars({ size: [0.8, 24] }),
          points: { show: false },
        },
        { label: "killed (high)", scale: "k", stroke: "rgba(215, 48, 31, 0.25)", width: 1, points: { show: false } },
        { label: "killed (best)", scale: "k", stroke: "#d7301f", width: 1.5, points: { show: false } },
        { label: "killed (low)", scale: "k", stroke: "rgba(215, 48, 31, 0.25)", width: 1, points: { show: false } },
      ],
      bands: [{ series: [2, 4], fill: "rgba(215, 48, 31, 0.15)" }],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.onRange(isoDate(monthStart(new Date(from * 1000).getUTCFullYear(), new Date(from * 1000).getUTCMonth() + 1)), monthEnd(to));
          },
        ],
      },
    };
    this.plot = new uPlot(opts, [xs, series.incidents, series.high, series.best, series.low], this.el);
  }
}
