// sleepstack charts: time-series panels and the hypnogram, drawn with uPlot.
// Shared by the live dashboard and the night report (inlined there), so both draw alike.
// Times arrive in ms UTC; uPlot's x axis is in seconds.
"use strict";

const SleepCharts = (() => {
  const STAGES = ["deep", "light", "rem", "wake"]; // bottom to top on the hypnogram
  const STAGE_COLOURS = { wake: "#d9822b", rem: "#8f5bd6", light: "#5b9bd5", deep: "#1f4e79" };
  const ALERT_COLOUR = "rgba(214, 39, 40, 0.16)";
  const UNCERTAIN_COLOUR = "rgba(120, 120, 120, 0.22)";

  // Shade spans ([start_ms, end_ms|null], null: still open) over the full height, behind the
  // series: alert episodes, uncertain epochs.
  function shadePlugin(getSpans, colour) {
    return {
      hooks: {
        drawClear: [
          (u) => {
            const { top, height } = u.bbox;
            u.ctx.save();
            u.ctx.fillStyle = colour;
            for (const [s, e] of getSpans()) {
              const x0 = u.valToPos(s / 1000, "x", true);
              const x1 = u.valToPos((e ?? Date.now()) / 1000, "x", true);
              u.ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
            }
            u.ctx.restore();
          },
        ],
      },
    };
  }

  // The subjects' time zone (IANA name), from the page; the axes and tables show local time.
  let zone = "UTC";
  function setZone(tz) {
    zone = tz || "UTC";
  }
  const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1000), zone);

  // Time axes in the subjects' zone, 24-hour (23:30, 00:00, ...), and the cursor's time in full.
  function clock(ts) {
    return new Intl.DateTimeFormat("sv-SE", { timeZone: zone, hour: "2-digit", minute: "2-digit", hour12: false })
      .format(new Date(ts * 1000));
  }
  const timeAxis = () => ({ values: (u, splits) => splits.map(clock) });
  const timeSeriesX = () => ({ value: (u, v) => (v == null ? "–" : time(v * 1000)) });

  // A panel without data says why instead of showing an empty grid.
  function noteIfEmpty(el, series, empty) {
    el.querySelector(".empty-note")?.remove();
    if (series.length && series.every((s) => s.every((v) => v == null))) {
      const note = document.createElement("p");
      note.className = "empty-note";
      note.textContent = empty;
      el.appendChild(note);
      el.dataset.empty = "1";
    } else {
      delete el.dataset.empty;
    }
  }

  // The panel's content width: its client width less its padding (the chart must not overflow it).
  function width(el) {
    const style = getComputedStyle(el);
    const inner = el.clientWidth - parseFloat(style.paddingLeft || "0") - parseFloat(style.paddingRight || "0");
    return Math.max(320, Math.floor(inner) || 800);
  }

  // A panel of one or more series on a shared time axis.
  // series: [{label, colour, key}], rows: [{t, <key>: value}] sorted by t.
  // empty: what the panel says when none of its series has a value (why there is nothing to draw).
  function timeSeries(
    el, { title, unit, series, rows, bands = () => [], range = null, height = 180, empty = "no data in this time range" },
  ) {
    const opts = {
      title,
      width: width(el),
      height,
      tzDate,
      plugins: [shadePlugin(bands, ALERT_COLOUR)],
      scales: { x: { time: true }, y: range ? { range } : { auto: true } },
      axes: [timeAxis(), { label: unit, size: 60 }],
      series: [
        timeSeriesX(),
        ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 1.5, dash: s.dash, spanGaps: false })),
      ],
    };
    const data = toData(series, rows);
    const chart = new uPlot(opts, data, el);
    noteIfEmpty(el, data.slice(1), empty);
    const api = {
      chart,
      points: () => chart.data[0].length,
      setRows(newRows) {
        const next = toData(series, newRows);
        chart.setData(next);
        noteIfEmpty(el, next.slice(1), empty);
        el.dataset.points = String(chart.data[0].length);
      },
      redraw() {
        chart.redraw();
      },
    };
    el.dataset.points = String(chart.data[0].length);
    return api;
  }

  function toData(series, rows) {
    const xs = rows.map((r) => r.t / 1000);
    return [xs, ...series.map((s) => rows.map((r) => (r[s.key] ?? null)))];
  }

  // Runs of consecutive uncertain epochs as [start_ms, end_ms] spans (an epoch is 30 s).
  function uncertainSpans(epochs, below) {
    const spans = [];
    for (const e of epochs) {
      const c = e.stage_confidence;
      if (below == null || c == null || !(c < below)) continue;
      const last = spans[spans.length - 1];
      if (last && last[1] === e.epoch_start_ms) last[1] += 30000;
      else spans.push([e.epoch_start_ms, e.epoch_start_ms + 30000]);
    }
    return spans;
  }

  // The hypnogram: one stepped line over the four stages; unscored epochs are gaps. Epochs
  // whose stage has a probability under ``lowConfidence`` are shaded grey: uncertain.
  function hypnogram(el, epochs, { height = 170, lowConfidence = null } = {}) {
    const xs = epochs.map((e) => e.epoch_start_ms / 1000);
    const ys = epochs.map((e) => (STAGES.includes(e.stage_label) ? STAGES.indexOf(e.stage_label) : null));
    const uncertain = uncertainSpans(epochs, lowConfidence);
    const opts = {
      title:
        lowConfidence == null
          ? "Hypnogram"
          : `Hypnogram (grey: uncertain, the stage's probability under ${Math.round(lowConfidence * 100)} %)`,
      plugins: [shadePlugin(() => uncertain, UNCERTAIN_COLOUR)],
      width: width(el),
      height,
      tzDate,
      scales: { x: { time: true }, y: { range: [-0.5, 3.5] } },
      axes: [
        timeAxis(),
        {
          size: 60,
          splits: () => [0, 1, 2, 3],
          values: (u, splits) => splits.map((v) => STAGES[v] ?? ""),
        },
      ],
      series: [
        timeSeriesX(),
        {
          label: "stage",
          stroke: "#1f4e79",
          width: 2,
          paths: uPlot.paths.stepped({ align: 1 }),
          value: (u, v) => (v == null ? "unscored" : STAGES[v]),
        },
      ],
    };
    const chart = new uPlot(opts, [xs, ys], el);
    el.dataset.points = String(xs.length);
    el.dataset.stages = String(ys.filter((v) => v != null).length);
    el.dataset.uncertain = String(uncertain.reduce((n, [s, e]) => n + (e - s) / 30000, 0));
    el.dataset.uncertainSpans = JSON.stringify(uncertain);
    el.uplot = chart; // the chart, for tests that read its scales
    return chart;
  }

  function fmt(v, digits = 1) {
    return v == null || Number.isNaN(v) ? "–" : Number(v).toFixed(digits);
  }

  function time(ms) {
    if (ms == null) return "–";
    const f = new Intl.DateTimeFormat("sv-SE", { // ISO-like: 2026-01-06 00:00:30
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
    });
    return f.format(new Date(ms));
  }

  // An alert's value or threshold with its unit: heart rates in bpm, pause lengths in s.
  const ALERT_UNITS = { hr_high: "bpm", hr_low: "bpm", breathing_pause: "s", battery_low: "%", device_silent: "s", not_worn: "s" };
  function alertFigure(kind, v) {
    if (v == null || Number.isNaN(v)) return "–";
    const unit = ALERT_UNITS[kind];
    return unit ? `${fmt(v)} ${unit}` : fmt(v);
  }

  function ago(ms, now = Date.now()) {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 120) return `${s} s ago`;
    if (s < 7200) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  return { timeSeries, hypnogram, fmt, time, ago, alertFigure, setZone, STAGES, STAGE_COLOURS };
})();
