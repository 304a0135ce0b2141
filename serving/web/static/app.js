// The live dashboard's pages: cohort, a subject's night, alerts, nights, compliance, registry.
// Each page reads the JSON API (same origin; the token cookie goes with every request)
// and refreshes itself; nothing is loaded from outside this server.
"use strict";

const REFRESH_MS = 1000;
const SILENT_MS = 5 * 60 * 1000; // a device quiet this long is shown as not reporting
const { fmt, time, ago } = SleepCharts;
SleepCharts.setZone(document.body.dataset.tz);

async function getJson(path) {
  const resp = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (resp.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}

// State-changing requests carry the CSRF token the session's cookie holds (double submit).
function csrfToken() {
  const m = document.cookie.match(/(?:^|; )sleepstack_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function send(method, path, body) {
  const headers = { "x-csrf-token": csrfToken() };
  if (body !== undefined) headers["content-type"] = "application/json";
  return fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
}

// ---- who is signed in (every page but the sign-in page) ------------------------------
// What each page needs (serving/web/access.py's POLICY says it for the server).
const PAGE_NEEDS = { "/": "live", "/subjects": "live", "/alerts": "live", "/nights": "nights", "/reports": "nights", "/compliance": "compliance", "/registry": "registry_read", "/audit": "audit", "/ack": "acknowledge" };

function pageNeeds(path) {
  const first = `/${path.split("/")[1] || ""}`;
  return PAGE_NEEDS[first] || PAGE_NEEDS[path];
}

// The signed-in principal (/api/me), read once per page.
let mePromise = null;
function whoAmI() {
  mePromise ||= getJson("/api/me");
  return mePromise;
}

async function showWho() {
  const who = document.getElementById("who");
  if (!who || document.body.dataset.page === "login") return;
  const me = await whoAmI();
  const may = new Set(me.may);
  const needs = PAGE_NEEDS;
  for (const a of document.querySelectorAll("header.bar a[href]")) {
    const need = needs[a.getAttribute("href")];
    if (need && !may.has(need)) a.hidden = true;
  }
  who.textContent = `${me.name} (${me.role}) `;
  const out = document.createElement("button");
  out.textContent = "Sign out";
  out.id = "sign-out";
  out.onclick = async () => { await send("DELETE", "/api/session"); location.assign("/login"); };
  if (me.via === "session") who.appendChild(out);
}

function loginPage() {
  document.getElementById("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const resp = await send("POST", "/api/session", { name: form.get("name"), password: form.get("password") });
    if (resp.ok) {
      // where they were going, if their role may see it; else the first page it may
      const me = await resp.json();
      const next = new URLSearchParams(location.search).get("next") || "/";
      const ok = (path) => path.startsWith("/") && !path.startsWith("//") && me.may.includes(pageNeeds(path));
      location.assign(ok(next) ? next : ["/", "/nights", "/compliance", "/registry", "/audit"].find(ok) || "/api/me");
    } else {
      document.getElementById("login-error").textContent = (await resp.json()).detail;
    }
  });
}

function auditPage() {
  every(10000, async () => {
    const q = new URLSearchParams();
    if (document.body.dataset.subject) q.set("subject", document.body.dataset.subject);
    if (document.body.dataset.user) q.set("user", document.body.dataset.user);
    const page = await getJson(`/api/audit?${q}`);
    document.getElementById("chain").textContent = page.chain_ok ? "The chain verifies: no entry changed, removed or moved." : `The chain is broken: ${page.problems.join("; ")}`;
    document.getElementById("chain").className = page.chain_ok ? "muted" : "alerting";
    fillTable(document.querySelector("#audit tbody"), page.entries, (e) => {
      const tr = document.createElement("tr");
      for (const v of [String(e.seq), time(e.at_ms), e.user, e.role, e.via, `${e.method} ${e.route}`, e.subjects.join(", ") || "–", String(e.outcome)]) tr.appendChild(cell(v));
      return tr;
    });
    document.getElementById("count").textContent = `${page.entries.length} entries`;
    document.body.dataset.ready = "1";
  });
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function fillTable(tbody, rows, makeRow) {
  const frag = document.createDocumentFragment();
  for (const r of rows) frag.appendChild(makeRow(r));
  tbody.replaceChildren(frag);
}

function showError(err) {
  const el = document.getElementById("status");
  if (el) el.textContent = `cannot reach the API (${err.message}); retrying`;
}

function clearError() {
  const el = document.getElementById("status");
  if (el) el.textContent = "";
}

function every(ms, fn) {
  const tick = async () => {
    try {
      await fn();
      clearError();
    } catch (err) {
      showError(err);
    }
    setTimeout(tick, ms);
  };
  tick();
}

// ---- acknowledging alerts (serving/web/acks.py) ----------------------------------------
function ackText(ack) {
  return `acknowledged by ${ack.by} at ${time(ack.at)} (${ack.via})`;
}

// The alert's acknowledgement, or an "Acknowledge" button on an open clinical alert for a role that may.
function ackCell(a, mayAck) {
  const td = document.createElement("td");
  td.className = "ack";
  if (a.ack) {
    td.textContent = ackText(a.ack);
  } else if (mayAck && a.status === "open" && (a.category || "clinical") === "clinical") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "ack-button";
    b.textContent = "Acknowledge";
    b.onclick = async () => {
      b.disabled = true;
      const resp = await send("POST", `/api/alerts/${encodeURIComponent(a.doc_id)}/ack`);
      const body = await resp.json();
      td.textContent = resp.ok ? ackText(body) : `not acknowledged: ${body.detail}`;
    };
    td.appendChild(b);
  } else {
    td.textContent = "–";
  }
  return td;
}

async function mayAcknowledge() {
  return (await whoAmI()).may.includes("acknowledge");
}

function ackPage() {
  const button = document.getElementById("ack-confirm");
  if (!button) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const resp = await send("POST", `/ack/${encodeURIComponent(document.body.dataset.token)}`);
    const body = await resp.json();
    const done = document.getElementById("ack-done");
    if (resp.ok) {
      document.getElementById("ack-heading").textContent = "Alert acknowledged";
      done.textContent = body.line;
      button.hidden = true;
    } else {
      done.textContent = `not acknowledged: ${body.detail}`;
      done.className = "alerting";
    }
  });
}

// ---- cohort --------------------------------------------------------------------------
function cohortPage() {
  const tbody = document.querySelector("#cohort tbody");
  every(2000, async () => {
    const { subjects } = await getJson("/api/subjects");
    const now = Date.now();
    fillTable(tbody, subjects, (s) => {
      const bed = s.latest.bed || {};
      const strap = s.latest.strap || {};
      const tr = document.createElement("tr");
      tr.dataset.subject = s.subject_id;
      const name = document.createElement("td");
      name.appendChild(link(`/subjects/${encodeURIComponent(s.subject_id)}`, s.subject_id));
      tr.appendChild(name);
      const silent = now - s.last_seen_ms > SILENT_MS;
      const inBed = bed.presence == null ? "–" : bed.presence ? "in bed" : "out of bed";
      tr.appendChild(cell(silent ? `not reporting (last: ${inBed})` : inBed, silent ? "silent" : bed.presence ? "in-bed" : "out-of-bed"));
      tr.appendChild(cell(fmt(strap.hr_bpm ?? bed.hr_bpm)));
      tr.appendChild(cell(fmt(bed.br_per_min)));
      tr.appendChild(cell(fmt(bed.movement, 2)));
      tr.appendChild(cell(`${time(s.last_seen_ms)} (${ago(s.last_seen_ms, now)})`));
      tr.appendChild(cell(String(s.open_alerts), s.open_alerts ? "alerting" : ""));
      return tr;
    });
    document.getElementById("count").textContent = `${subjects.length} subjects`;
  });
}

// ---- a subject's live night ------------------------------------------------------------
function subjectPage() {
  const subject = document.body.dataset.subject;
  const byKey = new Map(); // `${source}|${epoch}` -> document (epochs are overwritten while they fill)
  let alerts = [];
  let charts = null;
  let bounds = null;
  let newest = 0;

  const bands = () => alerts.map((a) => [a.start_ms, a.end_ms]);
  const STRAP_WINDOW_MS = 30 * 60 * 1000; // the per-second trace shows the last half hour
  let strapChart = null;

  async function loadStrap() {
    const end = Math.min(bounds.night_end_ms, newest + 30000);
    const q = `start_ms=${Math.max(bounds.night_start_ms, end - STRAP_WINDOW_MS)}&end_ms=${end}`;
    const { samples } = await getJson(`/api/subjects/${encodeURIComponent(subject)}/samples?${q}`);
    const data = samples.map((d) => ({ t: d.event_time_ms, hr: d.hr_bpm }));
    if (!strapChart) {
      strapChart = SleepCharts.timeSeries(document.getElementById("strap-hr"), {
        title: "Strap heart rate, per second (last 30 min)", unit: "bpm", rows: data, bands,
        series: [{ label: "strap (bpm)", colour: "#c0392b", key: "hr" }],
      });
    } else strapChart.setRows(data);
  }

  function rows() {
    const byT = new Map();
    for (const d of byKey.values()) {
      const r = byT.get(d.epoch_start_ms) || { t: d.epoch_start_ms };
      if (d.source === "bed") {
        Object.assign(r, { hr_bed: d.hr_bpm, br: d.br_per_min, mv: d.movement, pres: d.presence == null ? null : d.presence ? 1 : 0 });
      } else {
        Object.assign(r, { hr_strap: d.hr_bpm, rmssd: d.rmssd_ms });
      }
      byT.set(d.epoch_start_ms, r);
    }
    return [...byT.values()].sort((a, b) => a.t - b.t);
  }

  function makeCharts(data) {
    const el = (id) => document.getElementById(id);
    return [
      SleepCharts.timeSeries(el("hr"), {
        title: "Heart rate", unit: "bpm", rows: data, bands,
        series: [
          { label: "strap (bpm)", colour: "#c0392b", key: "hr_strap" },
          { label: "bed (bpm)", colour: "#e67e22", key: "hr_bed", dash: [5, 4] },
        ],
      }),
      SleepCharts.timeSeries(el("hrv"), {
        title: "HRV (strap RMSSD)", unit: "ms", rows: data, bands, empty: "no strap beat-to-beat intervals: HRV needs them",
        series: [{ label: "RMSSD (ms)", colour: "#8e44ad", key: "rmssd" }],
      }),
      SleepCharts.timeSeries(el("br"), {
        title: "Breathing rate", unit: "/min", rows: data, bands, empty: "no bed sensor: breathing rate needs one",
        series: [{ label: "breaths/min", colour: "#16a085", key: "br" }],
      }),
      SleepCharts.timeSeries(el("movement"), {
        title: "Movement (share of each epoch's seconds with gross body movement)", unit: "0-1", rows: data,
        bands, range: [0, 1], empty: "no bed sensor: movement needs one",
        series: [{ label: "movement (0-1)", colour: "#2c3e50", key: "mv" }],
      }),
      SleepCharts.timeSeries(el("presence"), {
        title: "In bed", unit: "", rows: data, bands, range: [-0.1, 1.1], height: 110, empty: "no bed sensor: presence needs one",
        series: [{ label: "presence (1 = in bed)", colour: "#27ae60", key: "pres" }],
      }),
    ];
  }

  async function load(startMs) {
    const q = `start_ms=${startMs}&end_ms=${bounds.night_end_ms}`;
    const [{ vitals }, alertResp] = await Promise.all([
      getJson(`/api/subjects/${encodeURIComponent(subject)}/vitals?${q}`),
      getJson(`/api/alerts?subject_id=${encodeURIComponent(subject)}&limit=1000`),
    ]);
    for (const d of vitals) {
      byKey.set(`${d.source}|${d.epoch_start_ms}`, d);
      newest = Math.max(newest, d.epoch_start_ms);
    }
    alerts = alertResp.alerts.filter((a) => a.start_ms < bounds.night_end_ms && (a.end_ms ?? Infinity) >= bounds.night_start_ms);
    renderAlerts();
    const data = rows();
    if (!charts) charts = makeCharts(data);
    else for (const c of charts) c.setRows(data);
    await loadStrap();
    document.getElementById("latest").textContent = newest ? `latest epoch ${time(newest)}` : "no epochs yet";
    document.body.dataset.ready = "1";
  }

  async function renderAlerts() {
    const mayAck = await mayAcknowledge();
    fillTable(document.querySelector("#subject-alerts tbody"), alerts, (a) => {
      const tr = document.createElement("tr");
      tr.className = a.status;
      const value = SleepCharts.alertFigure(a.kind, a.value);
      for (const v of [a.kind, a.status, time(a.start_ms), time(a.end_ms), fmt(a.duration_s, 0), value]) {
        tr.appendChild(cell(v));
      }
      tr.appendChild(ackCell(a, mayAck));
      return tr;
    });
  }

  (async () => {
    try {
      bounds = await getJson(`/api/subjects/${encodeURIComponent(subject)}`);
    } catch (err) {
      showError(err);
      return;
    }
    const wanted = document.body.dataset.night;
    if (wanted && wanted !== bounds.night) {
      document.getElementById("status").textContent = `showing the subject's latest night, ${bounds.night}`;
    }
    document.getElementById("night").textContent = `night of ${bounds.night}`;
    await load(bounds.night_start_ms);
    // re-read the last two minutes each second: new epochs, and the one still filling
    every(REFRESH_MS, () => load(Math.max(bounds.night_start_ms, newest - 120000)));
  })();
}

// ---- alerts --------------------------------------------------------------------------
function alertsPage() {
  every(2000, async () => {
    const [{ alerts }, { counts }] = await Promise.all([getJson("/api/alerts?limit=1000"), getJson("/api/alerts/counts")]);
    const mayAck = await mayAcknowledge();
    const kinds = new Map();
    for (const c of counts) {
      const k = kinds.get(c.kind) || { open: 0, closed: 0 };
      k[c.status] = c.count;
      kinds.set(c.kind, k);
    }
    fillTable(document.querySelector("#alerts-by-kind tbody"), [...kinds.entries()].sort(), ([kind, n]) => {
      const tr = document.createElement("tr");
      tr.appendChild(cell(kind));
      tr.appendChild(cell(String(n.open), n.open ? "alerting" : ""));
      tr.appendChild(cell(String(n.closed)));
      return tr;
    });
    fillTable(document.querySelector("#alerts tbody"), alerts, (a) => {
      const tr = document.createElement("tr");
      tr.className = a.status;
      const who = document.createElement("td");
      who.appendChild(link(`/subjects/${encodeURIComponent(a.subject_id)}`, a.subject_id));
      tr.appendChild(who);
      const [value, threshold] = [a.value, a.threshold].map((v) => SleepCharts.alertFigure(a.kind, v));
      for (const v of [a.kind, a.category || "clinical", a.source, a.status, time(a.start_ms), time(a.end_ms), fmt(a.duration_s, 0), value, threshold]) {
        tr.appendChild(cell(v));
      }
      tr.appendChild(ackCell(a, mayAck));
      return tr;
    });
    const total = (status) => counts.filter((c) => c.status === status).reduce((n, c) => n + c.count, 0);
    document.getElementById("count").textContent = `${total("open")} open, ${total("closed")} closed`;
  });
}

// ---- nights --------------------------------------------------------------------------
function nightsPage() {
  every(10000, async () => {
    const subject = document.body.dataset.subject;
    const { nights } = await getJson(subject ? `/api/nights?subject_id=${encodeURIComponent(subject)}` : "/api/nights");
    fillTable(document.querySelector("#nights tbody"), nights, (n) => {
      const tr = document.createElement("tr");
      const who = document.createElement("td");
      who.appendChild(link(`/nights/${encodeURIComponent(n.subject_id)}/${n.night}`, `${n.subject_id} · ${n.night}`));
      tr.appendChild(who);
      for (const v of [n.status, fmt(n.tst_min, 0), fmt(n.efficiency_pct), fmt(n.waso_min, 0), fmt(n.sleep_score, 0), fmt(n.pauses_per_hour), fmt(n.coverage_pct, 0)]) {
        tr.appendChild(cell(v));
      }
      return tr;
    });
    document.getElementById("count").textContent = `${nights.length} nights`;
    document.body.dataset.ready = "1";
  });
}

// ---- compliance ----------------------------------------------------------------------
function compliancePage() {
  every(30000, async () => {
    const until = document.body.dataset.until;
    const grid = await getJson(until ? `/api/compliance?until=${encodeURIComponent(until)}` : "/api/compliance");
    const head = document.querySelector("#compliance thead tr");
    head.replaceChildren(...["subject", "status", "devices"].map((h) => Object.assign(document.createElement("th"), { textContent: h })));
    for (const n of grid.nights) {
      const th = document.createElement("th");
      th.textContent = n.slice(5);
      th.title = n;
      head.appendChild(th);
    }
    fillTable(document.querySelector("#compliance tbody"), grid.subjects, (s) => {
      const tr = document.createElement("tr");
      const who = document.createElement("td");
      who.appendChild(link(`/nights?subject_id=${encodeURIComponent(s.subject_id)}`, s.subject_id));
      tr.appendChild(who);
      tr.appendChild(cell(s.status));
      const devs = s.silent ? cell(`silent since ${s.last_seen_ms ? ago(s.last_seen_ms) : "ever"}`, "alerting") : cell(s.last_seen_ms ? `seen ${ago(s.last_seen_ms)}` : "–", "muted");
      for (const d of s.devices || []) devs.appendChild(deviceChip(d));
      tr.appendChild(devs);
      for (const c of s.cells) {
        const td = cell(c.state === "not enrolled" ? "" : c.coverage_pct == null ? c.state.slice(0, 4) : `${fmt(c.coverage_pct, 0)}%`, `c ${c.state.replace(" ", "-")}`);
        td.title = `${c.night}: ${c.state}${c.reason ? ` (${c.reason})` : ""}`;
        tr.appendChild(td);
      }
      return tr;
    });
    const missing = grid.subjects.reduce((n, s) => n + s.cells.filter((c) => c.state === "missing").length, 0);
    document.getElementById("count").textContent = `${grid.subjects.length} subjects × ${grid.nights.length} nights, ${missing} missing`;
    document.body.dataset.ready = "1";
  });
}

// A device's health in one chip: its label and battery, coloured by its flags.
function deviceChip(d) {
  const flags = [d.low_battery && "battery low", d.silent && "silent", d.not_worn && "not worn"].filter(Boolean);
  const chip = document.createElement("span");
  chip.className = `chip${d.low_battery ? " low-battery" : ""}${d.silent ? " silent" : ""}${d.not_worn ? " not-worn" : ""}`;
  chip.textContent = `${d.label || d.kind} ${d.battery_pct == null ? "–" : `${d.battery_pct}%`}${flags.length ? ` (${flags.join(", ")})` : ""}`;
  chip.title = `${d.address}: last measurement ${d.last_seen_ms ? time(d.last_seen_ms) : "never"}`;
  return chip;
}

// ---- registry ------------------------------------------------------------------------
function registryPage() {
  every(30000, async () => {
    const [subjects, devices, assignments, live] = await Promise.all([
      getJson("/api/registry/subjects"),
      getJson("/api/registry/devices"),
      getJson("/api/registry/assignments"),
      getJson("/api/subjects"),
    ]);
    const seen = {};
    for (const s of live.subjects) for (const doc of Object.values(s.latest || {})) if (doc) seen[doc.device_id] = Math.max(seen[doc.device_id] || 0, doc.epoch_start_ms);
    fillTable(document.querySelector("#subjects tbody"), subjects, (s) => {
      const tr = document.createElement("tr");
      const rules = Object.entries(s.alert_overrides).map(([k, v]) => `${k}=${v}`).join(", ");
      for (const v of [s.subject_id, s.status, s.tz, time(s.enrolled_ms), s.withdrawn_ms ? time(s.withdrawn_ms) : "–", s.age_band || "–", s.sex || "–", rules || "defaults"]) tr.appendChild(cell(v));
      return tr;
    });
    fillTable(document.querySelector("#devices tbody"), devices, (d) => {
      const tr = document.createElement("tr");
      const last = d.last_seen_ms || seen[d.address]; // the collector's statuses, else the newest epoch
      const quiet = d.assigned_to && (!last || Date.now() - last > SILENT_MS);
      for (const v of [d.address, d.kind, d.label || "–", d.assigned_to || "nobody"]) tr.appendChild(cell(v));
      tr.appendChild(cell(d.battery_pct == null ? "–" : `${d.battery_pct}%`, d.low_battery ? "alerting battery" : "battery"));
      tr.appendChild(cell(d.connected == null ? "–" : d.connected ? "connected" : "lost", d.connected === false ? "alerting" : ""));
      tr.appendChild(cell(d.worn == null ? "–" : d.worn ? "yes" : "no", d.not_worn ? "alerting" : ""));
      tr.appendChild(cell(last ? ago(last) : "never", quiet ? "silent" : ""));
      tr.appendChild(cell(d.technical_alerts.length ? d.technical_alerts.join(", ") : "–", d.technical_alerts.length ? "alerting" : ""));
      return tr;
    });
    fillTable(document.querySelector("#assignments tbody"), assignments, (a) => {
      const tr = document.createElement("tr");
      for (const v of [a.device, a.subject_id, time(a.from_ms), a.to_ms ? time(a.to_ms) : "until further notice"]) tr.appendChild(cell(v));
      return tr;
    });
    for (const [id, rows] of [["subjects", subjects], ["devices", devices], ["assignments", assignments]]) document.getElementById(`${id}-count`).textContent = `${rows.length}`;
    document.body.dataset.ready = "1";
  });
}

const PAGES = { cohort: cohortPage, subject: subjectPage, alerts: alertsPage, nights: nightsPage, compliance: compliancePage, registry: registryPage, login: loginPage, audit: auditPage, ack: ackPage };
showWho();
(PAGES[document.body.dataset.page] || (() => {}))();
