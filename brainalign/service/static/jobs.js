/* The jobs list: live status and progress, polled from GET /api/v1/jobs. */
"use strict";

(() => {
  const { el, clear } = BA;
  const filter = document.getElementById("status-filter");

  function row(job) {
    const p = job.progress || {};
    const label = job.name ? job.name : job.id.slice(0, 12);
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", {}, el("a", { href: BA.jobUrl(job.id), class: "job-link" }, label)),
      el("td", {}, BA.statusBadge(job.status)),
      el("td", {}, BA.progressCell(p)),
      el("td", {}, `${p.participants_done ?? 0}/${p.participants_total ?? 0}`),
      el("td", {}, `${p.layers_done ?? 0}/${p.layers_total ?? 0}`),
      el("td", {}, job.user),
      el("td", {}, BA.when(job.created_at)));
  }

  async function refresh() {
    const q = filter.value ? `?status=${encodeURIComponent(filter.value)}` : "";
    const jobs = await BA.json(`/api/v1/jobs${q}`);
    const list = Array.isArray(jobs) ? jobs : (jobs.jobs || []);
    const body = clear(document.querySelector("#jobs tbody"));
    for (const job of list) body.append(row(job));
    document.getElementById("jobs-empty").hidden = list.length > 0;
    return true;
  }

  filter.addEventListener("change", () => refresh().catch(BA.showError));
  BA.onReady(() => BA.poll(refresh, 2000));
})();
