// The farm over time: users per node (one line each), every node's status
// as a strip under the lines, and a mark where a node left UP — a failover
// when it had clients. Drawn as SVG by this page from GET /farm/timeline
// (kept by the node for ten minutes, so the chart has a past as soon as the
// page opens); nothing is fetched from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#4a78c2", "#d9822b", "#2a9d8f", "#9b5de5", "#c0392b", "#6c757d", "#b5a000", "#e76f9a"];
const STATUS_COLORS = { UP: "#2e9e4f", DOWN: "#c62828", DRAINING: "#e0a000" };

const W = 900, PLOT_H = 170, STRIP_H = 9, PAD_L = 64, PAD_R = 12, PAD_T = 18;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds the users axis up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export class FarmChart {
  // spanMs is how far back the chart looks; 0 (auto): from the first
  // sample the node holds, at least a minute.
  constructor(svg, { spanMs = 0 } = {}) {
    this.svg = svg;
    this.spanMs = spanMs;
    this.samples = [];
    this.changes = [];
    this.nodes = [];
    this.last = 0; // the newest sample's time
  }

  // update fetches what the node holds after the newest sample it has.
  async update() {
    const res = await fetch("/farm/timeline" + (this.last ? "?since=" + this.last : ""), { cache: "no-store" });
    if (!res.ok) throw new Error("GET /farm/timeline: " + res.status);
    const tl = await res.json();
    this.now = tl.now;
    this.reporter = tl.reporter;
    for (const n of tl.nodes) if (!this.nodes.includes(n)) this.nodes.push(n);
    for (const s of tl.samples) for (const n of Object.keys(s.users)) if (!this.nodes.includes(n)) this.nodes.push(n);
    // since= is the newest sample's time: a change after it comes again
    // until a newer sample does, so each is kept once.
    const key = (c) => `${c.t} ${c.node} ${c.to}`;
    const have = new Set(this.changes.map(key));
    this.samples.push(...tl.samples.filter((s) => s.t > this.last));
    this.changes.push(...tl.changes.filter((c) => !have.has(key(c))));
    if (this.samples.length) this.last = this.samples[this.samples.length - 1].t;
    const cut = this.now - tl.span_ms;
    this.samples = this.samples.filter((s) => s.t >= cut);
    this.changes = this.changes.filter((c) => c.t >= cut);
    this.draw();
  }

  draw() {
    const svg = this.svg;
    const nodes = this.nodes;
    const stripTop = PAD_T + PLOT_H + 22;
    const H = stripTop + nodes.length * (STRIP_H + 3) + 4;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("height", H);
    svg.replaceChildren();
    const t1 = this.now ?? Date.now();
    let span = this.spanMs;
    if (!span) span = Math.max(60000, t1 - (this.samples[0]?.t ?? t1));
    const t0 = t1 - span;
    const shown = this.samples.filter((s) => s.t >= t0);
    const x = (t) => PAD_L + ((t - t0) / span) * (W - PAD_L - PAD_R);
    let top = 0;
    for (const s of shown) for (const n of nodes) top = Math.max(top, s.users[n] ?? 0);
    const ymax = niceMax(top);
    const y = (u) => PAD_T + PLOT_H - (u / ymax) * PLOT_H;

    // Axes: users at 0, half, max; time every minute, labelled in minutes ago.
    const axes = el("g", { class: "axes" });
    for (const u of [0, ymax / 2, ymax]) {
      axes.append(el("line", { x1: PAD_L, x2: W - PAD_R, y1: y(u), y2: y(u), class: "grid" }));
      axes.append(el("text", { x: PAD_L - 6, y: y(u) + 4, "text-anchor": "end" }, String(u)));
    }
    const tick = span <= 90000 ? 15000 : span <= 240000 ? 30000 : 60000;
    const ago = (ms) => {
      const s = Math.round(ms / 1000);
      if (s === 0) return "now";
      if (s < 60) return `-${s} s`;
      return s % 60 ? `-${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` : `-${s / 60} min`;
    };
    for (let k = 0; k * tick <= span; k++) {
      const xm = x(t1 - k * tick);
      axes.append(el("line", { x1: xm, x2: xm, y1: PAD_T, y2: PAD_T + PLOT_H, class: "grid" }));
      axes.append(el("text", { x: xm, y: PAD_T + PLOT_H + 14, "text-anchor": k === 0 ? "end" : "middle" }, ago(k * tick)));
    }
    axes.append(el("text", { x: 4, y: 11 }, "users"));
    svg.append(axes);

    // One line of users per node.
    nodes.forEach((n, i) => {
      const pts = shown.filter((s) => n in s.users).map((s) => `${x(s.t).toFixed(1)},${y(s.users[n]).toFixed(1)}`);
      if (pts.length === 0) return;
      const line = el("polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2, class: "users", "data-node": n, "data-points": pts.length });
      line.append(el("title", {}, n));
      svg.append(line);
    });

    // Status strips: one row per node, a run of one colour per status.
    nodes.forEach((n, i) => {
      const ry = stripTop + i * (STRIP_H + 3);
      svg.append(el("text", { x: PAD_L - 6, y: ry + STRIP_H - 1, "text-anchor": "end", class: "strip-label" }, n));
      let run = null;
      const flush = (end) => {
        if (!run) return;
        const r = el("rect", { x: x(run.t), y: ry, width: Math.max(1, x(end) - x(run.t)), height: STRIP_H, fill: STATUS_COLORS[run.status] ?? "#999", class: "status", "data-node": n, "data-status": run.status });
        r.append(el("title", {}, `${n} ${run.status}`));
        svg.append(r);
      };
      for (const s of shown) {
        const st = s.status[n];
        if (!st) continue;
        if (!run || run.status !== st) {
          flush(s.t);
          run = { t: s.t, status: st };
        }
      }
      flush(t1);
    });

    // A mark where a node left UP (or came back): a failover when it had
    // clients. Failovers get their labels first; a label that would
    // overlap one already placed is left to the mark's title (hover).
    const marks = el("g", { class: "marks" });
    const placed = [];
    const visible = this.changes.filter((c) => c.t >= t0);
    const order = [...visible.filter((c) => c.failover), ...visible.filter((c) => !c.failover)];
    const labels = new Map();
    // A label reads rightwards from its mark, or leftwards in the right half.
    const LABEL_W = 250;
    for (const c of order) {
      const xc = x(c.t);
      const right = xc > (W + PAD_L) / 2;
      const from = right ? xc - 4 - LABEL_W : xc + 4;
      if (placed.every((p) => from + LABEL_W < p || from > p + LABEL_W)) {
        placed.push(from);
        labels.set(c, right ? { x: xc - 4, anchor: "end" } : { x: xc + 4, anchor: "start" });
      }
    }
    for (const c of visible) {
      const xc = x(c.t);
      const color = STATUS_COLORS[c.to] ?? "#999";
      const g = el("g", { class: "mark" + (c.failover ? " failover" : ""), "data-node": c.node, "data-to": c.to, "data-users": c.users, "data-failover": c.failover });
      g.append(el("line", { x1: xc, x2: xc, y1: PAD_T, y2: stripTop + nodes.length * (STRIP_H + 3), stroke: color, "stroke-dasharray": c.to === "UP" ? "2 3" : "5 3", "stroke-width": c.failover ? 2 : 1 }));
      if (c.failover) g.append(el("path", { d: `M${xc - 5},${PAD_T - 9} L${xc + 5},${PAD_T - 9} L${xc},${PAD_T - 2} Z`, fill: color }));
      if (labels.has(c)) {
        const label = c.failover
          ? `${c.node} ${c.to}: ${c.users} user${c.users === 1 ? "" : "s"} ${c.to === "DOWN" ? "failed over" : "moved"}`
          : `${c.node} ${c.to}`;
        const at = labels.get(c);
        g.append(el("text", { x: at.x, y: PAD_T - 6, fill: color, "text-anchor": at.anchor, class: "mark-label" }, label));
      }
      g.append(el("title", {}, `${new Date(c.t).toLocaleTimeString()} ${c.node} ${c.from} → ${c.to}` + (c.failover ? `, ${c.users} users` : "")));
      marks.append(g);
    }
    svg.append(marks);

    // Legend: each node's colour and users now.
    const legend = document.getElementById("chart-legend");
    if (legend) {
      const lastSample = shown[shown.length - 1];
      legend.replaceChildren(...nodes.map((n, i) => {
        const span = document.createElement("span");
        span.className = "legend";
        span.dataset.node = n;
        span.style.setProperty("--c", COLORS[i % COLORS.length]);
        span.textContent = `${n} ${lastSample?.users[n] ?? "–"}`;
        return span;
      }));
    }
  }
}
