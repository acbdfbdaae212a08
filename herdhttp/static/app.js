// The herd status page: polls status.json and redraws. No dependencies.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
let prev = null;     // the previous document, for rates
let lastOK = 0;      // when the last poll succeeded (ms)

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtNum(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

function fmtAge(ms) {
  if (ms < 0) ms = 0;
  const s = ms / 1000;
  if (s < 1) return Math.round(ms) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

// linkState is "up", "wait" (down, but within a redial) or "down".
function linkState(l) {
  return l.state === "redialling" ? "wait" : l.state;
}

const COUNTERS = [
  ["Clients", "Clients", false],
  ["Connections", "Conns", false],
  ["IAMAT", "IAMAT", true],
  ["WHATSAT", "WHATSAT", true],
  ["Invalid lines", "Invalid", true],
  ["Local updates", "RecordsLocal", true],
  ["Updates from peers", "RecordsPeer", true],
  ["Records flooded", "RecordsFlooded", true],
  ["Places calls", "PlacesCalls", true],
  ["Link drops", "LinkDrops", true],
  ["Connections accepted", "ConnsAccepted", true],
  ["Handshake failures", "HandshakeFails", true],
];

function drawCounters(doc) {
  const box = document.getElementById("counters");
  box.replaceChildren();
  const dt = prev ? (doc.now_ms - prev.now_ms) / 1000 : 0;
  const up = doc.links.filter(l => l.up).length;
  const linkCard = el("div", { class: "card", id: "card-links" });
  linkCard.append(el("div", { class: "label" }, "Links up"), el("div", { class: "value" }, up + " / " + doc.links.length));
  box.append(linkCard);
  for (const [label, key, rate] of COUNTERS) {
    const v = doc.stats[key] || 0;
    const card = el("div", { class: "card", id: "card-" + key });
    card.append(el("div", { class: "label" }, label), el("div", { class: "value" }, fmtNum(v)));
    if (rate) {
      const r = dt > 0 ? Math.max(0, (v - (prev.stats[key] || 0)) / dt) : 0;
      card.append(el("div", { class: "rate" }, dt > 0 ? fmtNum(r) + "/s" : "…/s"));
    }
    box.append(card);
  }
}

function drawGraph(doc) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const cx = 210, cy = 160, R = doc.links.length > 6 ? 125 : 115;
  const n = doc.links.length;
  const pos = doc.links.map((l, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    return [cx + R * Math.cos(a) * 1.25, cy + R * Math.sin(a)];
  });
  doc.links.forEach((l, i) => {
    const st = linkState(l);
    const [x, y] = pos[i];
    svg.append(el("svg:line", { class: "edge " + st, x1: cx, y1: cy, x2: x, y2: y }));
    const mx = cx + (x - cx) * 0.6, my = cy + (y - cy) * 0.6;
    svg.append(el("svg:text", { class: "backlog", x: mx, y: my - 4 }, "backlog " + fmtNum(l.backlog)));
  });
  const self = el("svg:g", { class: "self" });
  self.append(el("svg:circle", { cx, cy, r: 34 }), el("svg:text", { x: cx, y: cy + 4 }, doc.server));
  svg.append(self);
  doc.links.forEach((l, i) => {
    const st = linkState(l);
    const [x, y] = pos[i];
    const g = el("svg:g", { class: "peer " + st, "data-peer": l.peer, "data-state": st });
    g.append(el("svg:title", {}, l.peer + " (" + (l.addr || "dials us") + "): " + st));
    g.append(el("svg:circle", { cx: x, cy: y, r: 33 }));
    g.append(el("svg:text", { x, y: y + 1 }, l.peer));
    g.append(el("svg:text", { class: "sub", x, y: y + 14 }, (st === "up" ? "up " : "down ") + fmtAge(doc.now_ms - l.since_ms)));
    svg.append(g);
  });
  if (n === 0) svg.append(el("svg:text", { x: cx, y: cy + 60 }, "no neighbours configured"));

  const tb = document.querySelector("#links tbody");
  tb.replaceChildren();
  for (const l of doc.links) {
    const st = linkState(l);
    const tr = el("tr", { "data-peer": l.peer });
    tr.append(el("td", {}, l.peer), el("td", { class: "state-" + st }, st === "wait" ? "redialling" : st),
      el("td", {}, fmtAge(doc.now_ms - l.since_ms)), el("td", {}, fmtNum(l.backlog)),
      el("td", {}, fmtNum(l.sent)), el("td", {}, fmtNum(l.received)), el("td", {}, String(l.ups)));
    tb.append(tr);
  }
}

// niceStep picks a graticule spacing giving a handful of lines over span.
function niceStep(span, lines) {
  for (const s of [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45, 90]) {
    if (span / s <= lines) return s;
  }
  return 90;
}

function drawMap(doc) {
  const svg = document.getElementById("map");
  svg.replaceChildren();
  const W = 420, H = 320, L = 44, B = 20; // left and bottom margins, for labels
  const pts = doc.clients.plot;
  document.getElementById("clients-shown").textContent =
    doc.clients.shown < doc.clients.total ? `(${fmtNum(doc.clients.shown)} of ${fmtNum(doc.clients.total)} shown)` : `(${fmtNum(doc.clients.total)})`;
  const pw = W - L - 6, ph = H - B - 6;
  svg.append(el("svg:rect", { class: "frame", x: L, y: 6, width: pw, height: ph }));
  let lat0 = -60, lat1 = 75, lon0 = -180, lon1 = 180;
  if (pts.length > 0) {
    lat0 = Math.min(...pts.map(p => p.la)); lat1 = Math.max(...pts.map(p => p.la));
    lon0 = Math.min(...pts.map(p => p.lo)); lon1 = Math.max(...pts.map(p => p.lo));
  }
  // Pad, and keep at least ~1 km of view around a lone client.
  const minSpan = 0.01;
  const padLat = Math.max((lat1 - lat0) * 0.1, (minSpan - (lat1 - lat0)) / 2, 0);
  const padLon = Math.max((lon1 - lon0) * 0.1, (minSpan - (lon1 - lon0)) / 2, 0);
  lat0 = Math.max(-90, lat0 - padLat); lat1 = Math.min(90, lat1 + padLat);
  lon0 = Math.max(-180, lon0 - padLon); lon1 = Math.min(180, lon1 + padLon);
  // One scale for both axes, longitude shrunk by cos(latitude) so shapes keep.
  const k = Math.max(Math.cos(((lat0 + lat1) / 2) * Math.PI / 180), 0.2);
  const s = Math.min(pw / ((lon1 - lon0) * k), ph / (lat1 - lat0));
  // Widen the view to fill the frame, centred on the clients.
  const cLon = (lon0 + lon1) / 2, cLat = (lat0 + lat1) / 2;
  lon0 = cLon - pw / (2 * k * s); lon1 = cLon + pw / (2 * k * s);
  lat0 = cLat - ph / (2 * s); lat1 = cLat + ph / (2 * s);
  const X = lon => L + (lon - lon0) * k * s, Y = lat => 6 + (lat1 - lat) * s;
  const digits = st => Math.max(0, -Math.floor(Math.log10(st)));
  const sLat = niceStep(lat1 - lat0, 6), sLon = niceStep(lon1 - lon0, 4);
  for (let v = Math.ceil(lat0 / sLat) * sLat; v <= lat1; v += sLat) {
    svg.append(el("svg:line", { class: "grat" + (Math.abs(v) < 1e-9 ? " zero" : ""), x1: X(lon0), x2: X(lon1), y1: Y(v), y2: Y(v) }));
    svg.append(el("svg:text", { x: L - 4, y: Y(v) + 3, class: "lat" }, v.toFixed(digits(sLat)) + "°"));
  }
  for (let v = Math.ceil(lon0 / sLon) * sLon; v <= lon1; v += sLon) {
    svg.append(el("svg:line", { class: "grat" + (Math.abs(v) < 1e-9 ? " zero" : ""), x1: X(v), x2: X(v), y1: Y(lat0), y2: Y(lat1) }));
    svg.append(el("svg:text", { class: "lon", x: X(v), y: H - 6 }, v.toFixed(digits(sLon)) + "°"));
  }
  const r = pts.length > 500 ? 2.5 : 4.5;
  for (const p of pts) {
    const c = el("svg:circle", { class: "client" + (p.s === doc.server ? " local" : ""), cx: X(p.lo), cy: Y(p.la), r, "data-client": p.c });
    c.append(el("svg:title", {}, `${p.c} at ${p.la.toFixed(6)}, ${p.lo.toFixed(6)} (reported to ${p.s})`));
    svg.append(c);
  }
  if (pts.length === 0) svg.append(el("svg:text", { class: "empty", x: W / 2, y: H / 2 }, "no clients yet"));
}

function drawRecent(doc) {
  const tb = document.querySelector("#recent tbody");
  tb.replaceChildren();
  for (const u of doc.recent.slice(0, 20)) {
    const tr = el("tr", { "data-client": u.client });
    tr.append(el("td", {}, u.received_ms ? fmtAge(doc.now_ms - u.received_ms) : "?"), el("td", {}, u.client),
      el("td", {}, u.location), el("td", {}, u.server), el("td", {}, u.from || "client"));
    tb.append(tr);
  }
  if (doc.recent.length === 0) {
    const tr = el("tr"); tr.append(el("td", { colspan: 5, class: "muted" }, "no updates yet")); tb.append(tr);
  }
}

function draw(doc) {
  document.title = doc.server + " · herd";
  document.getElementById("server").textContent = doc.server;
  document.getElementById("addr").textContent = doc.addr;
  const b = document.getElementById("ready");
  b.textContent = doc.ready ? "ready" : "not ready";
  b.className = "badge " + (doc.ready ? "ok" : "bad");
  b.title = doc.not_ready || "";
  document.getElementById("why").textContent = doc.not_ready || "";
  drawCounters(doc);
  drawGraph(doc);
  drawMap(doc);
  drawRecent(doc);
}

async function poll() {
  let wait = 1000;
  try {
    const resp = await fetch("status.json", { cache: "no-store" });
    if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
    const doc = await resp.json();
    draw(doc);
    prev = doc;
    lastOK = Date.now();
    wait = doc.refresh_ms || 1000;
    document.getElementById("updated").textContent = "live";
  } catch (e) {
    const b = document.getElementById("ready");
    b.textContent = "unreachable";
    b.className = "badge bad";
    document.getElementById("updated").textContent = lastOK ? "last update " + fmtAge(Date.now() - lastOK) + " ago" : String(e);
  }
  setTimeout(poll, wait);
}

poll();
