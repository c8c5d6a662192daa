/* The submit form: a YAML/JSON configuration (pasted, uploaded, or written from a dataset and a model)
 * -> POST /api/v1/jobs {"config": <the text>, "name", "force"}; the server validates it. */
"use strict";

(() => {
  const { el, clear } = BA;
  const text = document.getElementById("config-text");
  const result = document.getElementById("submit-result");
  let datasets = [];
  let models = [];

  const list = (answer, key) => (Array.isArray(answer) ? answer : (answer && answer[key]) || []);
  const first = (obj, keys) => { for (const k of keys) if (obj && obj[k] !== undefined && obj[k] !== null) return obj[k]; return ""; };
  const datasetPath = (d) => String(first(d, ["path", "root", "name"]));
  const modelPath = (m) => String(typeof m === "string" ? m : first(m, ["path", "id", "name"]));
  const safeLabel = (s) => (s.split(/[/:]/).pop().replace(/[^A-Za-z0-9.+-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "model");
  const q = (s) => JSON.stringify(String(s));  /* a JSON string is a valid YAML scalar */

  function fillTasks() {
    const d = datasets[Number(document.getElementById("pick-dataset").value)];
    const select = clear(document.getElementById("pick-task"));
    for (const t of (d && d.tasks) || []) select.append(el("option", { value: t }, t));
  }

  async function loadChoices() {
    datasets = list(await BA.json("/api/v1/datasets").catch(() => []), "datasets");
    models = list(await BA.json("/api/v1/models").catch(() => []), "models");
    const ds = clear(document.getElementById("pick-dataset"));
    datasets.forEach((d, i) => ds.append(el("option", { value: i }, first(d, ["name", "path", "root"]))));
    const ms = clear(document.getElementById("pick-model"));
    models.forEach((m, i) => ms.append(el("option", { value: i }, modelPath(m))));
    fillTasks();
  }

  function writeConfig() {
    const d = datasets[Number(document.getElementById("pick-dataset").value)];
    const m = models[Number(document.getElementById("pick-model").value)];
    if (!d || !m) { result.textContent = "Pick a dataset and a model first."; return; }
    const task = document.getElementById("pick-task").value;
    const path = modelPath(m);
    const name = safeLabel(String(first(d, ["name"]) || "study")) + (task ? `-${task}` : "");
    text.value = [
      `name: ${q(name)}`,
      "data:",
      "  source:",
      "    kind: bids",
      `    root: ${q(datasetPath(d))}`,
      ...(task ? [`    task: ${q(task)}`] : []),
      "models:",
      `  - label: ${q(safeLabel(path))}`,
      `    path: ${q(path)}`,
      "    layers: all",
      "scoring:",
      "  methods: [encoding]",
      "",
    ].join("\n");
    document.getElementById("job-name").value = name;
  }

  async function submit(ev) {
    ev.preventDefault();
    result.textContent = "";
    const config = text.value;
    if (!config.trim()) { result.textContent = "Paste or upload a configuration first."; return; }
    const name = document.getElementById("job-name").value.trim();
    const body = { config, name: name || null, force: document.getElementById("job-force").checked };
    const resp = await BA.request("/api/v1/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const answer = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      result.className = "error";
      result.textContent = `Refused (${resp.status}): ${typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail)}`;
      return;
    }
    result.className = "";
    result.textContent = resp.status === 201 ? `Job ${answer.id} created.` : `This configuration already ran: job ${answer.id}.`;
    window.location.assign(BA.jobUrl(answer.id));
  }

  BA.onReady(async () => {
    document.getElementById("config-file").addEventListener("change", async (ev) => {
      const file = ev.target.files[0];
      if (file) text.value = await file.text();
    });
    document.getElementById("pick-dataset").addEventListener("change", fillTasks);
    document.getElementById("fill-config").addEventListener("click", writeConfig);
    document.getElementById("submit-form").addEventListener("submit", (ev) => submit(ev).catch(BA.showError));
    await loadChoices();
  });
})();
