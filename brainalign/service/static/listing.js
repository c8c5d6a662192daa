/* Datasets, models and cache pages: whatever the endpoint answers, as tables (text only). */
"use strict";

(() => {
  const { el, clear } = BA;
  const box = document.getElementById("listing");

  const cell = (v) => {
    if (v === null || v === undefined) return "";
    if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  };

  function table(rows) {
    const cols = [...new Set(rows.flatMap((r) => (r && typeof r === "object" ? Object.keys(r) : ["value"])))];
    return el("table", { class: "listing" },
      el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, cell(r && typeof r === "object" ? r[c] : r)))))));
  }

  function render(answer) {
    clear(box);
    if (Array.isArray(answer)) {
      box.append(answer.length ? table(answer) : el("p", {}, "Nothing here yet."));
      return;
    }
    const scalars = Object.entries(answer).filter(([, v]) => !Array.isArray(v));
    if (scalars.length) box.append(el("dl", { class: "summary" }, ...scalars.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, cell(v))])));
    for (const [k, v] of Object.entries(answer).filter(([, x]) => Array.isArray(x))) {
      box.append(el("h2", {}, k), v.length ? table(v) : el("p", {}, "Nothing here yet."));
    }
  }

  BA.onReady(async () => render(await BA.json(box.dataset.endpoint)));
})();
