// The night report: hypnogram, heart-rate and breathing traces from the staged epochs.
// Reads its data from the page (<script id="night-data" type="application/json">), so the
// report file works offline, printed or sent.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("night-data").textContent);
  SleepCharts.setZone(data.tz);
  const epochs = data.epochs;
  const rows = epochs.map((e) => ({ t: e.epoch_start_ms, hr: e.hr_bpm, br: e.br_per_min, mv: e.movement }));
  SleepCharts.hypnogram(document.getElementById("hypnogram"), epochs, { lowConfidence: data.low_confidence });
  SleepCharts.timeSeries(document.getElementById("hr-trace"), {
    title: "Heart rate",
    unit: "bpm",
    series: [{ label: "heart rate (bpm)", colour: "#c0392b", key: "hr" }],
    rows,
    empty: "no heart rate this night: neither a strap nor a bed sensor measured one",
  });
  SleepCharts.timeSeries(document.getElementById("br-trace"), {
    title: "Breathing rate",
    unit: "/min",
    series: [{ label: "breathing rate (/min)", colour: "#16a085", key: "br" }],
    rows,
    empty: "no bed sensor this night: breathing rate needs one (a chest strap does not measure it)",
  });
  document.body.dataset.ready = "1";
})();
