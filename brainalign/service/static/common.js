/* brainalign dashboard: the token, calls to the JSON API, and DOM helpers.
 * Data from the server go into the page through textContent only (never innerHTML). */
"use strict";

const BA = (() => {
  const KEY = "brainalign.token";
  const TERMINAL = ["succeeded", "partial", "failed", "cancelled"];
  let started = false;

  const token = () => sessionStorage.getItem(KEY);

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  /* One line of the server's answer: its "detail", else the HTTP status. */
  async function detailOf(resp) {
    try {
      const body = await resp.json();
      if (typeof body.detail === "string") return body.detail;
      if (body.detail !== undefined) return JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    return `${resp.status} ${resp.statusText}`;
  }

  /* fetch() with the bearer token; a 401 logs out. Returns the Response (ok or not). */
  async function request(path, opts = {}, tok = token()) {
    const headers = Object.assign({}, opts.headers || {}, { Authorization: `Bearer ${tok}` });
    const resp = await fetch(path, Object.assign({}, opts, { headers }));
    if (resp.status === 401 && tok === token()) {
      sessionStorage.removeItem(KEY);
      showLogin("The server refused the token: log in again.");
      throw new ApiError(401, "the server refused the token");
    }
    return resp;
  }

  /* The JSON of a successful answer; an ApiError naming the server's detail otherwise. */
  async function json(path, opts) {
    const resp = await request(path, opts);
    if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
    return resp.json();
  }

  /* el("td", {class: "x"}, "text", child): children that are not Nodes become text. */
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = String(v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function showError(err) {
    const box = document.getElementById("error");
    if (box) box.textContent = err ? `Error: ${err.message || err}` : "";
  }

  function showLogin(message) {
    document.getElementById("content").hidden = true;
    document.getElementById("logout").hidden = true;
    document.getElementById("login").hidden = false;
    document.getElementById("login-error").textContent = message || "";
  }

  function showContent() {
    document.getElementById("login").hidden = true;
    document.getElementById("content").hidden = false;
    document.getElementById("logout").hidden = false;
  }

  /* Run the page's start function once a token the server accepts is in sessionStorage. */
  function onReady(start) {
    const go = () => { showContent(); if (!started) { started = true; Promise.resolve(start()).catch(showError); } };
    document.getElementById("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const tok = document.getElementById("token-input").value.trim();
      if (!tok) return;
      try {
        const resp = await request("/api/v1/jobs", {}, tok);
        if (resp.status === 401) { showLogin("The server refused this token."); return; }
        if (!resp.ok) { showLogin(await detailOf(resp)); return; }
        sessionStorage.setItem(KEY, tok);
        document.getElementById("token-input").value = "";
        go();
      } catch (e) { showLogin(`Cannot reach the server: ${e.message}`); }
    });
    document.getElementById("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      window.location.assign("/");
    });
    if (token()) go(); else showLogin("");
  }

  function progressCell(p) {
    const done = p ? p.tasks_done : 0, total = p ? p.tasks_total : 0;
    const bar = el("progress", { max: Math.max(total, 1), value: done });
    return el("span", { class: "progress" }, bar, ` ${done}/${total} tasks`);
  }

  function statusBadge(status) { return el("span", { class: `status status-${status}` }, status); }

  const jobUrl = (id) => `/jobs/${encodeURIComponent(id)}`;
  const apiJob = (id) => `/api/v1/jobs/${encodeURIComponent(id)}`;
  const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "") : "");

  /* Poll fn every `ms` while it returns true (stops on an error, shown). */
  function poll(fn, ms) {
    const tick = async () => {
      let again = false;
      try { again = await fn(); showError(null); } catch (e) { if (e.status !== 401) showError(e); again = e.status !== 401 && e.status !== 404; }
      if (again) setTimeout(tick, ms);
    };
    return tick();
  }

  return { token, request, json, el, clear, showError, onReady, progressCell, statusBadge, jobUrl, apiJob, when,
           poll, TERMINAL, ApiError };
})();
