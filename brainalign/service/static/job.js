/* One job's page: summary, participants, layer curves (Plotly), brain maps (nilearn), files, settings. */
"use strict";

(() => {
  const { el, clear } = BA;
  const jobId = document.getElementById("job").dataset.jobId;
  const api = BA.apiJob(jobId);
  let shownDone = -1;
  let curves = [];
  let maps = [];
  let mapsPicked = false;  /* the user chose a map: keep it when the list grows */

  function field(dl, name, value) {
    if (value === null || value === undefined || value === "") return;
    dl.append(el("dt", {}, name), el("dd", { "data-field": name }, value));
  }

  const seconds = (s) => (typeof s === "number" ? `${s.toFixed(1)} s` : null);

  function renderJob(job) {
    const p = job.progress || {};
    document.getElementById("job-title").textContent = job.name ? `Job ${job.name}` : `Job ${job.id}`;
    document.title = `${job.name || job.id} · brainalign`;
    const dl = clear(document.getElementById("summary"));
    field(dl, "id", job.id);
    field(dl, "name", job.name);
    field(dl, "user", job.user);
    dl.append(el("dt", {}, "status"), el("dd", { id: "job-status", "data-status": job.status }, BA.statusBadge(job.status)));
    dl.append(el("dt", {}, "progress"), el("dd", {}, BA.progressCell(p)));
    field(dl, "participants", `${p.participants_done ?? 0}/${p.participants_total ?? 0}`);
    field(dl, "layers", `${p.layers_done ?? 0}/${p.layers_total ?? 0}`);
    field(dl, "reason", job.reason);
    field(dl, "created", BA.when(job.created_at));
    field(dl, "started", BA.when(job.started_at));
    field(dl, "finished", BA.when(job.finished_at));
    field(dl, "queued for", seconds(job.timings && job.timings.queued_s));
    field(dl, "ran for", seconds(job.timings && job.timings.running_s));
    field(dl, "configuration hash", job.config_hash);
    const terminal = BA.TERMINAL.includes(job.status);
    document.getElementById("cancel").hidden = terminal || job.cancel_requested;
    if (job.cancel_requested && !terminal) {
      document.getElementById("cancel-note").textContent = "Cancel requested: it takes effect at the next task boundary.";
    }
    const body = clear(document.querySelector("#participants tbody"));
    for (const part of job.participants || []) {
      body.append(el("tr", { "data-subject": part.subject },
        el("td", {}, `sub-${part.subject}`), el("td", {}, part.model),
        el("td", {}, BA.statusBadge(part.status)), el("td", { class: "reason" }, part.reason || "")));
    }
    return terminal;
  }

  /* --------------------------------------------------------------- layer curves */
  function plotCurves() {
    const box = document.getElementById("curves");
    const chosen = document.getElementById("curve-metric").value;
    const shown = curves.filter((c) => `${c.method}:${c.metric}` === chosen);
    if (!shown.length) return;
    const traces = shown.map((c) => ({
      type: "scatter", mode: "lines+markers", x: c.layer, y: c.mean, name: `sub-${c.subject} ${c.model}`,
      error_y: { type: "data", symmetric: false, visible: true, thickness: 1,
                 array: c.high.map((h, i) => (h === null || c.mean[i] === null ? 0 : h - c.mean[i])),
                 arrayminus: c.low.map((l, i) => (l === null || c.mean[i] === null ? 0 : c.mean[i] - l)) },
    }));
    const byModel = {};
    for (const c of shown) (byModel[c.model] = byModel[c.model] || []).push(c);
    for (const [model, list] of Object.entries(byModel)) {
      if (list.length < 2) continue;
      const layers = [...new Set(list.flatMap((c) => c.layer))].sort((a, b) => a - b);
      const mean = layers.map((L) => {
        const v = list.map((c) => c.mean[c.layer.indexOf(L)]).filter((x) => typeof x === "number");
        return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
      });
      traces.push({ type: "scatter", mode: "lines", x: layers, y: mean, name: `mean over participants, ${model}`,
                    line: { width: 4, dash: "dash" } });
    }
    const [method, metric] = chosen.split(":");
    clear(box);
    Plotly.newPlot(box, traces, {
      margin: { t: 30 }, xaxis: { title: { text: "layer" }, dtick: 1 },
      yaxis: { title: { text: `${metric} (${method}), mean over targets ± 95% CI` } },
      legend: { orientation: "h" },
    }, { responsive: true, displaylogo: false });
  }

  async function loadCurves() {
    curves = (await BA.json(`${api}/curves`)).curves || [];
    const select = document.getElementById("curve-metric");
    const before = select.value;
    const kinds = [...new Set(curves.map((c) => `${c.method}:${c.metric}`))];
    clear(select);
    for (const k of kinds) select.append(el("option", { value: k }, k.replace(":", " ")));
    if (kinds.includes(before)) select.value = before;
    plotCurves();
  }

  /* ------------------------------------------------------------------ brain maps */
  function fill(select, values, label = (v) => v) {
    const before = mapsPicked ? select.value : "";
    clear(select);
    for (const v of values) select.append(el("option", { value: v }, label(v)));
    if (values.map(String).includes(before)) select.value = before;
  }

  async function loadMap() {
    const frame = document.getElementById("brainmap");
    const subject = document.getElementById("map-subject").value;
    const layer = document.getElementById("map-layer").value;
    if (!subject || layer === "") return;
    const q = new URLSearchParams({ layer, subject, model: document.getElementById("map-model").value,
      view: document.getElementById("map-view").value, background: document.getElementById("map-background").value });
    const hemi = document.getElementById("map-hemi").value;
    if (hemi) q.set("hemi", hemi);
    const note = document.getElementById("map-note");
    note.textContent = "Rendering the map…";
    const resp = await BA.request(`${api}/brainmap?${q}`);
    if (!resp.ok) { note.textContent = `No map: ${(await resp.json().catch(() => ({}))).detail || resp.status}`; return; }
    frame.srcdoc = await resp.text();  /* a sandboxed frame: its scripts cannot reach this page or the token */
    frame.hidden = false;
    note.textContent = "";
  }

  async function loadMaps() {
    maps = (await BA.json(`${api}/brainmaps`)).maps || [];
    if (!maps.length) return;
    const subjects = [...new Set(maps.map((m) => m.subject))].sort((a, b) => (a === "group" ? -1 : b === "group" ? 1 : a.localeCompare(b)));
    fill(document.getElementById("map-subject"), subjects, (s) => (s === "group" ? "group mean" : `sub-${s}`));
    fill(document.getElementById("map-model"), [...new Set(maps.map((m) => m.model))]);
    fill(document.getElementById("map-layer"), [...new Set(maps.map((m) => m.layer))].sort((a, b) => a - b), (L) => `layer ${L}`);
    const hemis = [...new Set(maps.map((m) => m.hemi).filter((h) => h))].sort();
    fill(document.getElementById("map-hemi"), hemis, (h) => `hemi-${h}`);
    document.getElementById("map-hemi-box").hidden = hemis.length === 0;
    await loadMap();
  }

  /* ----------------------------------------------------------------------- files */
  const fileUrl = (path) => `${api}/files/${path.split("/").map(encodeURIComponent).join("/")}`;

  async function openFile(path) {
    const resp = await BA.request(fileUrl(path));
    if (!resp.ok) throw new BA.ApiError(resp.status, `${path}: ${resp.status}`);
    const blob = await resp.blob();
    if (path.endsWith(".html")) {  /* reports: shown in a frame without scripts */
      const frame = document.getElementById("report");
      frame.srcdoc = await blob.text();
      frame.hidden = false;
      frame.scrollIntoView();
      return;
    }
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: path.split("/").pop() });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function loadFiles() {
    const answer = await BA.json(`${api}/files`);
    const list = (Array.isArray(answer) ? answer : answer.files || []).map((f) => (typeof f === "string" ? { path: f } : f));
    list.sort((a, b) => (b.path.endsWith(".html") - a.path.endsWith(".html")) || a.path.localeCompare(b.path));
    const ul = clear(document.getElementById("files"));
    for (const f of list) {
      const link = el("a", { href: fileUrl(f.path), "data-path": f.path, class: f.path.endsWith(".html") ? "report-link" : "" },
        f.path.endsWith(".html") ? `report: ${f.path}` : f.path);
      link.addEventListener("click", (ev) => { ev.preventDefault(); openFile(f.path).catch(BA.showError); });
      const size = typeof f.bytes === "number" ? ` (${(f.bytes / 1024).toFixed(1)} KiB)` : "";
      ul.append(el("li", {}, link, size));
    }
  }

  async function loadOutputs() {
    await Promise.all([loadCurves(), loadMaps(), loadFiles()].map((p) => p.catch(BA.showError)));
  }

  async function refresh() {
    const job = await BA.json(api);
    const terminal = renderJob(job);
    const done = (job.progress && job.progress.participants_done) || 0;
    if (terminal || done !== shownDone) {
      shownDone = done;
      if (done > 0 || terminal) await loadOutputs();
    }
    return !terminal;
  }

  async function start() {
    document.getElementById("curve-metric").addEventListener("change", plotCurves);
    for (const id of ["map-subject", "map-model", "map-layer", "map-hemi", "map-view", "map-background"]) {
      document.getElementById(id).addEventListener("change", () => { mapsPicked = true; loadMap().catch(BA.showError); });
    }
    document.getElementById("cancel").addEventListener("click", async () => {
      await BA.json(`${api}/cancel`, { method: "POST" });
      document.getElementById("cancel-note").textContent = "Cancel requested: it takes effect at the next task boundary.";
      document.getElementById("cancel").hidden = true;
    });
    BA.json(`${api}/config`).then((c) => {
      document.getElementById("config").textContent = JSON.stringify(c.config, null, 2);
    }).catch(BA.showError);
    await BA.poll(refresh, 1500);
  }

  BA.onReady(start);
})();
