// polymodal web page: plain JavaScript over the HTTP API, no build step. Server data is never put in
// innerHTML: every node is built with h(), so file names, transcripts and OCR text stay text.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
// Words a search or a question is made of but that say nothing about what is sought: never highlighted.
const STOP = new Set(("a an and are as at be by for from has have how i in is it its of on or that the this to was were what when where which who why will with you " +
  "about after all also am any anything before but can could did do does done find found get give got had he her here him his if into just let like " +
  "me mention mentioned mentions more most my no not now only other our out over say said says saying see seen shall she should show shows so some " +
  "something speak speaker talk talks tell than their them then there these they those too under up us very want we whose would your").split(" "));
const state = { image: null, audio: null, modality: "", ask: "", analyzeFiles: [], askFiles: [], lastQuery: null, recorder: null };

// --- DOM helpers ---------------------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
// Children for the DOM: null, undefined and false are skipped (Element.append would show them as "null").
const kids = (list) => list.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false);
function add(el, ...children) { el.append(...kids(children)); return el; }
const clear = (el, ...children) => { el.replaceChildren(...kids(children)); return el; };
const clock = (s) => { s = Math.max(0, s || 0); const m = Math.floor(s / 60); return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`; };
const pct = (x) => `${Math.round((x || 0) * 100)}%`;
const bytes = (n) => n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
const KIND = { image: "Image", audio: "Audio", text: "Document", video: "Video" };

// --- API ---------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}
const RETRY_LIMIT_S = 10; // "too many requests" or "busy" with a shorter Retry-After is waited out, once
async function api(path, { method = "GET", json, form, signal, accept, retried = false } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form) body = form;
  if (accept) headers.Accept = accept;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("The service cannot be reached. Is `polymodal serve` still running?", 0);
  }
  if (response.status === 401) {
    askForKey();
    throw new ApiError("An API key is needed (see the dialog).", 401);
  }
  const retryAfter = Number(response.headers.get("Retry-After") ?? Infinity);
  if ((response.status === 429 || response.status === 503) && !retried && retryAfter <= RETRY_LIMIT_S) {
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
    if (signal?.aborted) throw new DOMException("aborted", "AbortError");
    return api(path, { method, json, form, signal, accept, retried: true });
  }
  if (!response.ok) {
    let message = `The service answered ${response.status}.`;
    try { const data = await response.json(); if (data.error) message = inWords(data.error); } catch { /* not JSON */ }
    throw new ApiError(message, response.status);
  }
  if (accept === "text/event-stream") return response;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

// A validation message ("text: String should have at most 2000 characters") as a sentence a reader understands.
const FIELDS = { text: "The search text", question: "The question", item_id: "The item number", item: "The item number", k: "The number of results", offset: "The page", labels: "The labels", ask: "The request" };
function inWords(message) {
  return String(message || "").split("; ").map(problemInWords).join(" ");
}
function problemInWords(message) {
  const found = /^([a-z_]+(?:\.[a-z_0-9]+)*): (.*)$/.exec(message);
  if (!found) return message;
  const field = FIELDS[found[1].split(".").pop()] || `The ${found[1].replaceAll("_", " ")}`;
  let what = found[2].replace(/\s*\[.*$/, "");
  what = what.replace(/^String should have at most (\d+) characters?/i, (_, n) => `is too long: at most ${Number(n).toLocaleString("en")} characters`)
    .replace(/^String should have at least 1 character/i, "is empty")
    .replace(/^Input should be a valid integer.*/i, "must be a whole number")
    .replace(/^Input should be (greater|less) than or equal to (\S+)/i, (_, side, n) => `must be ${side === "greater" ? "at least" : "at most"} ${n}`)
    .replace(/^Field required/i, "is missing");
  return `${field} ${what}${/[.!?]$/.test(what) ? "" : "."}`;
}

// Server-sent events read from a fetch response (works with POST, unlike EventSource).
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

function showError(err) {
  if (err && err.name === "AbortError") return;
  const banner = $("#banner");
  clear(banner, 
    h("span", { text: err && err.message ? err.message : String(err) }),
    h("button", { type: "button", "aria-label": "Dismiss", onclick: () => { banner.hidden = true; } }, "×"),
  );
  banner.hidden = false;
}
function hideError() { $("#banner").hidden = true; }

// --- API key dialog ---------------------------------------------------------------------------------------------
function askForKey() {
  const dialog = $("#key-dialog");
  if (!dialog.open) dialog.showModal();
}
$("#key-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("#key-input").value.trim();
  const error = $("#key-error");
  try {
    const response = await fetch("/api/session", { method: "POST", headers: { Authorization: `Bearer ${key}` } });
    if (!response.ok) throw new Error((await response.json()).error || "That key was not accepted.");
    $("#key-dialog").close();
    error.hidden = true;
    loadStats();
    route();
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
});

// --- routing -------------------------------------------------------------------------------------------------------
const VIEWS = ["search", "item", "add", "analyze", "ask"];
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}
function show(view) {
  for (const name of VIEWS) $(`#view-${name}`).hidden = name !== view;
  for (const link of $$("nav a")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}
async function route() {
  hideError();
  state.pagesSeen = (state.pagesSeen || 0) + 1;
  const { parts, params } = parseHash();
  const view = parts[0] || "search";
  if (view === "item" && parts[1]) { show("item"); return renderItem(parts[1]); }
  if (view === "add") { show("add"); document.title = "Add files · polymodal"; return refreshJobs(); }
  if (view === "analyze") { show("analyze"); document.title = "Analyze · polymodal"; return; }
  if (view === "ask") { show("ask"); document.title = "Ask · polymodal"; return; }
  if (view === "people") return;  // people.js's view
  show("search");
  document.title = "polymodal";
  const url = currentUrl();
  const shown = searches.get(url);
  if (shown) return restoreSearch(url, shown);  // Back / Forward: what was shown, where it was scrolled to
  setModality(params.get("m") || "");
  if (view === "similar" && parts[1]) return runSimilar(parts[1], { push: false });
  state.image = null;
  state.audio = null;
  renderChips();
  $("#q").value = params.get("q") || "";
  const attached = params.get("with");
  if (attached) {  // a search with a file, opened anew: files are not kept in addresses
    showError(`${attached} was attached to this search; files are not kept in the address: attach it again.`);
  }
  if ($("#q").value.trim()) return runSearch({ push: false });
  state.lastSearchUrl = null;
  renderWelcome();
}
window.addEventListener("hashchange", route);

// --- search ----------------------------------------------------------------------------------------------------------
function setModality(value) {
  state.modality = value;
  for (const button of $$(".filters .seg")) {
    const on = button.dataset.modality === value;
    button.setAttribute("aria-checked", String(on));
    button.tabIndex = on ? 0 : -1;
  }
}
for (const button of $$(".filters .seg")) {
  button.addEventListener("click", () => { setModality(button.dataset.modality); rerun(); });
}
// The current search again, under the new filter: a new entry in the history.
function rerun() {
  const similar = /^#\/similar\/(\d+)/.exec(location.hash);
  if (similar) return runSimilar(similar[1]);
  if ($("#q").value.trim() || state.image || state.audio) runSearch();
}
// A radio group the keyboard way: one Tab stop (the checked button); arrows, Home and End move and choose.
function radioGroup(group) {
  group.addEventListener("keydown", (event) => {
    const buttons = $$(".seg", group).filter((b) => !b.hidden && !b.disabled);
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    const next = buttons[(to + buttons.length) % buttons.length];
    next.focus();
    next.click();
  });
}
for (const group of $$('[role="radiogroup"]')) {
  radioGroup(group);
  for (const button of $$(".seg", group)) button.tabIndex = button.getAttribute("aria-checked") === "true" ? 0 : -1;
}

// --- history: one entry per search, per filter change, per page; Back and Forward show what was shown ---------
const searches = new Map();  // address -> { data, text, modality, image, audio, title } of a search shown
const scrolls = new Map();  // address -> how far down it was scrolled
const MAX_QUERY = 2000;  // the service's limit on the search text
if ("scrollRestoration" in history) history.scrollRestoration = "manual";
const currentUrl = () => location.hash && location.hash !== "#" ? location.hash : "#/";
window.addEventListener("scroll", () => { if (!$("#view-search").hidden) scrolls.set(currentUrl(), window.scrollY); }, { passive: true });
// The address that states what is shown: the words, the filter, the attached file's name (a file cannot be in an
// address), or #/similar/12 for items like an indexed one.
function searchUrl(text) {
  const params = new URLSearchParams();
  if (text) params.set("q", text);
  if (state.modality) params.set("m", state.modality);
  const held = state.image || state.audio;
  if (held) params.set("with", held.file.name);
  const query = params.toString().replaceAll("+", "%20");
  return query ? `#/?${query}` : "#/";
}
function goTo(url, push) {
  state.lastSearchUrl = url === "#/" ? null : url;
  if (currentUrl() === url) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}
function restoreSearch(url, shown) {
  searchController?.abort();
  $("#q").value = shown.text;
  setModality(shown.modality);
  state.image = shown.image;
  state.audio = shown.audio;
  renderChips();
  state.lastSearchUrl = url;
  renderResults(shown.data, shown.text, shown);
  requestAnimationFrame(() => window.scrollTo(0, scrolls.get(url) || 0));
}
function renderWelcome() {
  clear($("#understood"));
  clear($("#results"), h("div", { class: "empty" },
    h("strong", { text: "Search your collection any way you like" }),
    h("span", { text: "Type words (English, 中文, …), attach or drop a photo, or press the microphone and ask out loud." })));
}
function renderChips() {
  const chips = clear($("#chips"));
  if (state.image) {
    chips.append(h("span", { class: "chip" }, h("img", { src: state.image.url, alt: "" }),
      `Image: ${state.image.file.name}`,
      h("button", { type: "button", "aria-label": "Remove the image", onclick: () => { URL.revokeObjectURL(state.image.url); state.image = null; renderChips(); } }, "×")));
  }
  if (state.audio) {
    chips.append(h("span", { class: "chip" }, h("span", { class: "glyph", "aria-hidden": "true" }, "♪"),
      `${state.audio.recorded ? "Voice" : "Audio"}: ${state.audio.file.name}`,
      h("button", { type: "button", "aria-label": "Remove the recording", onclick: () => { state.audio = null; renderChips(); } }, "×")));
  }
}
function attach(file) {
  if (!file) return false;
  if (!file.size) {
    showError(`${file.name} is empty: there is nothing to search with.`);
    return false;
  }
  const kind = (file.type || "").split("/")[0];
  if (kind === "image") {
    if (state.image) URL.revokeObjectURL(state.image.url);
    state.image = { file, url: URL.createObjectURL(file) };
  } else if (kind === "audio" || kind === "video" || /\.(wav|mp3|ogg|opus|flac|m4a|webm)$/i.test(file.name)) {
    state.audio = { file };
  } else {
    showError(`${file.name} is not an image or a recording; search by example takes those two.`);
    return false;
  }
  renderChips();
  return true;
}
$("#attach-btn").addEventListener("click", () => $("#attach").click());
$("#attach").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (attach(file)) runSearch();
});
$("#search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
$("#q").addEventListener("input", () => { if ($("#q").value.length >= MAX_QUERY) tooLong(); });

const PAGE = 24;
// One page of hits (and, on the first page, the weaker matches below the cut-off) for the current query.
async function fetchHits(text, offset) {
  if (state.image || state.audio) {
    const form = new FormData();
    if (text) form.append("text", text);
    form.append("k", String(PAGE));
    form.append("offset", String(offset));
    if (state.modality) form.append("modality", state.modality);
    if (state.image) form.append("image", state.image.file, state.image.file.name);
    if (state.audio) form.append("audio", state.audio.file, state.audio.file.name);
    return api("/api/search", { method: "POST", form, signal: searchController.signal });
  }
  const json = { text, k: PAGE, offset, modality: state.modality || null };
  return api("/api/search", { method: "POST", json, signal: searchController.signal });
}

let searchController = null;
async function runSearch({ push = true } = {}) {
  const text = $("#q").value.trim();
  if (!text && !state.image && !state.audio) { goTo("#/", push); renderWelcome(); $("#q").focus(); return; }
  if (text.length > MAX_QUERY) { tooLong(); return; }
  hideError();
  searchController?.abort();
  searchController = new AbortController();
  const results = $("#results");
  results.setAttribute("aria-busy", "true");
  clear(results, ...Array.from({ length: 8 }, () => h("div", { class: "skeleton", "aria-hidden": "true" })));
  clear($("#understood"), h("span", { class: "spinner", "aria-hidden": "true" }), " Searching…");
  state.lastQuery = { text };
  const url = searchUrl(text);
  goTo(url, push);
  const shown = { text, modality: state.modality, image: state.image, audio: state.audio };
  try {
    shown.data = await fetchHits(text, 0);
    searches.set(url, shown);
    scrolls.set(url, 0);
    renderResults(shown.data, text, shown);
  } catch (err) {
    if (err.name === "AbortError") return;
    const dropped = dropRejected(err);
    clear($("#understood"));
    clear(results, h("div", { class: "empty", role: "alert" }, h("strong", { text: "The search did not work" }), h("span", { text: err.message }),
      dropped.length ? h("span", { class: "muted", text: `${dropped.join(" and ")} was removed from the search.` }) : null));
  } finally {
    results.setAttribute("aria-busy", "false");
  }
}
// Items like an indexed one (#/similar/12): the shareable form of a search by an image or a recording.
async function runSimilar(id, { push = true } = {}) {
  searchController?.abort();
  searchController = new AbortController();
  const url = `#/similar/${id}${state.modality ? `?m=${state.modality}` : ""}`;
  goTo(url, push);
  state.image = null;
  state.audio = null;
  renderChips();
  $("#q").value = "";
  const results = $("#results");
  results.setAttribute("aria-busy", "true");
  clear(results, ...Array.from({ length: 8 }, () => h("div", { class: "skeleton", "aria-hidden": "true" })));
  try {
    if (!/^[1-9][0-9]{0,15}$/.test(id)) throw new ApiError(`“${id.slice(0, 60)}” is not an item number.`, 404);
    const [item, found] = await Promise.all([api(`/api/items/${id}`, { signal: searchController.signal }),
      api(`/api/items/${id}/similar?k=48`, { signal: searchController.signal })]);
    const keep = (hit) => !state.modality || hit.modality === state.modality;
    const data = { ...found, hits: found.hits.filter(keep), weaker: (found.weaker || []).filter(keep), more: false, query_evidence: [] };
    const shown = { data, text: "", modality: state.modality, image: null, audio: null, title: `Like ${item.name}`, like: item };
    searches.set(url, shown);
    renderResults(data, "", shown);
  } catch (err) {
    if (err.name === "AbortError") return;
    clear($("#understood"));
    clear(results, h("div", { class: "empty", role: "alert" }, h("strong", { text: "No similar items to show" }), h("span", { text: err.message })));
  } finally {
    results.setAttribute("aria-busy", "false");
  }
}
function tooLong() {
  const length = $("#q").value.length;
  const told = length > MAX_QUERY ? `this one has ${length.toLocaleString("en")}: shorten it` : "what was typed or pasted past that was left out";
  clear($("#understood"), h("span", { class: "error", role: "alert", text: `A search is at most ${MAX_QUERY.toLocaleString("en")} characters; ${told}.` }));
}

// An attachment the service refused (empty, not an image, too large) is taken off the search: the next search
// must not fail again on it. Returns the names removed.
function dropRejected(err) {
  if (![400, 413, 415, 422].includes(err.status)) return [];
  const names = [];
  for (const key of ["image", "audio"]) {
    const held = state[key];
    if (!held) continue;
    const named = err.message.includes(held.file.name);
    const other = key === "image" ? state.audio : state.image;
    if (named || !other || !err.message.includes(other.file.name)) {
      if (key === "image") URL.revokeObjectURL(held.url);
      names.push(held.file.name);
      state[key] = null;
    }
  }
  if (names.length) renderChips();
  return names;
}
function understoodText(evidence) {
  const spoken = evidence.filter((e) => e.kind === "transcript").map((e) => e.text).join(" ").trim();
  if (spoken) return `Heard: “${spoken}”`;
  const labels = evidence.filter((e) => e.kind === "label" || e.kind === "tag").slice(0, 3).map((e) => e.text);
  const ocr = evidence.filter((e) => e.kind === "ocr").map((e) => e.text).slice(0, 2);
  const parts = [];
  if (labels.length) parts.push(`Seen as: ${labels.join(", ")}`);
  if (ocr.length) parts.push(`Text: “${ocr.join(" / ")}”`);
  return parts.join(" · ");
}
function renderResults(data, text, shown = null) {
  const results = clear($("#results"));
  const terms = queryTerms(text + " " + (data.query_evidence || []).filter((e) => e.kind === "transcript").map((e) => e.text).join(" "));
  const seen = understoodText(data.query_evidence || []);
  const count = `${data.hits.length}${data.more ? "+" : ""} good match${data.hits.length === 1 ? "" : "es"}`;
  const like = shown && shown.like ? h("span", {}, "Like ", h("a", { href: `#/item/${shown.like.item}`, text: shown.like.name }), ": ") : null;
  const took = typeof data.milliseconds === "number" ? ` in ${Math.round(data.milliseconds)} ms` : "";
  clear($("#understood"), like, `${count}${took}`, seen ? ` · ${seen}` : "");
  if (!data.hits.length) {
    results.append(h("div", { class: "empty" }, h("strong", { text: "No good matches" }),
      h("span", { text: (data.weaker || []).length ? "Only weak matches, below. Try other words, or remove the kind filter." : "Try other words, or remove the kind filter." })));
  }
  results.append(...data.hits.map((hit, i) => card(hit, terms, i)));
  if (data.more) results.append(moreButton(text, terms, data.hits.length, shown));
  if ((data.weaker || []).length) {
    const weaker = h("details", { class: "weaker" }, h("summary", { text: `${data.weaker.length} weaker match${data.weaker.length === 1 ? "" : "es"}` }));
    weaker.append(h("div", { class: "grid" }, ...data.weaker.map((hit, i) => card(hit, terms, data.hits.length + i))));
    results.append(weaker);
  }
}
function moreButton(text, terms, shownCount, shown = null) {
  const button = h("button", { type: "button", class: "more", text: "More results" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const data = await fetchHits(text, shownCount);
      const cards = data.hits.map((hit, i) => card(hit, terms, shownCount + i));
      if (shown && shown.data) {  // Back to this search shows these too
        shown.data = { ...shown.data, hits: [...shown.data.hits, ...data.hits], more: data.more };
      }
      button.replaceWith(...cards, ...(data.more ? [moreButton(text, terms, shownCount + data.hits.length, shown)] : []));
    } catch (err) {
      button.disabled = false;
      if (err.name !== "AbortError") showError(err);
    }
  });
  return button;
}
function queryTerms(text) {
  const words = (text || "").toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  const out = new Set();
  for (const word of words) {
    if (STOP.has(word) || (word.length < 3 && /^[a-z0-9]+$/.test(word))) continue;
    out.add(word);
  }
  return [...out];
}
function highlight(text, terms) {
  const fragment = document.createDocumentFragment();
  if (!terms.length) { fragment.append(text); return fragment; }
  // Latin words match whole words, with a plural or possessive ending ("cat" in "cats", "cat's"; not in "Cattle"
  // nor "bobcat"); CJK anywhere (no spaces between its words).
  const escaped = terms.map((t) => {
    const safe = t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u.test(t) ? safe : `(?<![\\p{L}\\p{N}])${safe}(?:e?s|'s|’s)?(?![\\p{L}\\p{N}])`;
  }).sort((a, b) => b.length - a.length);
  const pattern = new RegExp(escaped.join("|"), "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    fragment.append(text.slice(last, match.index), h("mark", { text: match[0] }));
    last = match.index + match[0].length;
  }
  fragment.append(text.slice(last));
  return fragment;
}
function excerpt(text, terms, size = 220) {
  const flat = text.replace(/(^|\n)\s*#{1,6}\s+/g, "$1").replace(/\s+/g, " ").trim();
  const lower = flat.toLowerCase();
  let at = -1;
  for (const term of terms) { at = lower.indexOf(term); if (at >= 0) break; }
  if (at < 0 || flat.length <= size) return flat.length > size ? flat.slice(0, size) + "…" : flat;
  const start = Math.max(0, at - Math.floor(size / 3));
  return (start > 0 ? "…" : "") + flat.slice(start, start + size) + (start + size < flat.length ? "…" : "");
}
function whyLine(hit, terms) {
  const why = hit.why || [];
  const line = h("p", { class: "why" });
  const moment = why.find((e) => e.kind === "transcript");
  const passage = why.find((e) => e.kind === "passage");
  const ocr = why.find((e) => e.kind === "ocr");
  if (moment) line.append(h("strong", { text: "Said: " }), highlight(`“${excerpt(moment.text, terms, 160)}”`, terms));
  else if (passage) line.append(highlight(excerpt(passage.text, terms), terms));
  else if (ocr) line.append(h("strong", { text: "Text: " }), highlight(`“${excerpt(ocr.text, terms, 140)}”`, terms));
  else {
    const labels = why.filter((e) => e.kind === "label" || e.kind === "tag").map((e) => e.text);
    if (labels.length) line.append(h("strong", { text: hit.modality === "audio" ? "Heard: " : "Seen: " }), highlight(labels.slice(0, 3).join(", "), terms));
  }
  return line;
}
// A recording's band: a note and its length once the player knows it (no made-up waveform).
function soundBand(audio) {
  const length = h("span", { class: "length" });
  const show = () => { if (Number.isFinite(audio.duration)) length.textContent = clock(audio.duration).replace(/\.\d$/, ""); };
  audio.addEventListener("loadedmetadata", show);
  audio.addEventListener("durationchange", show);
  return h("div", { class: "wave", "aria-hidden": "true" }, h("span", { class: "glyph", text: "♪" }), length);
}
function card(hit, terms, index) {
  const title = h("a", { class: "title", href: `#/item/${hit.item}`, text: hit.name });
  const score = h("span", { class: "score", title: `relevance ${pct(hit.score)}${hit.similarity == null ? "" : `; cosine ${hit.similarity}`}` }, pct(hit.score));
  const meta = h("div", { class: "meta" }, h("span", { class: `kind ${hit.modality}`, text: KIND[hit.modality] || hit.modality }), score);
  const body = h("div", { class: "body" }, meta, title, whyLine(hit, terms));
  if (hit.people?.length) body.append(personChips(hit.people));
  const el = h("article", { class: `card ${hit.modality}`, "data-name": hit.name, "data-item": hit.item, "data-rank": index + 1, hidden: removals.has(hit.item) });
  if (hit.modality === "image") {
    el.append(h("div", { class: "thumb" }, h("img", { src: hit.thumbnail, alt: hit.name, loading: "lazy" })), body);
  } else if (hit.modality === "audio") {
    const start = hit.start ?? 0;
    const audio = h("audio", { controls: true, preload: "metadata", src: `${hit.media}#t=${start}`, "aria-label": `Play ${hit.name}` });
    if (hit.start !== null && hit.start !== undefined) {
      body.insertBefore(h("button", { type: "button", class: "time", title: "Play from the matching moment", "data-start": start,
        onclick: () => playFrom(audio, start) }, `▶ ${clock(start)}`), body.children[2]);
    }
    body.append(audio);
    el.append(soundBand(audio), body);
  } else if (hit.modality === "video") {
    el.append(videoCard(hit, body), body);  // video.js
  } else {
    el.append(h("div", { class: "doc", "aria-hidden": "true" }, "¶ ", hit.path), body);
  }
  return el;
}
// The people an image or video shows (named first), each a link to the People view.
function personChips(people) {
  return h("div", { class: "people-chips", "aria-label": "People in it" },
    ...people.map((p) => h("a", { class: "person-chip", href: "#/people", title: "See in People" }, p.name || `person ${p.person}`)));
}
function playFrom(audio, start) {
  const go = () => { audio.currentTime = start; audio.play().catch(() => {}); };
  if (audio.readyState >= 1) go();
  else { audio.preload = "auto"; audio.addEventListener("loadedmetadata", go, { once: true }); audio.load(); }
}

// --- voice ----------------------------------------------------------------------------------------------------------
$("#mic").addEventListener("click", toggleRecording);
async function toggleRecording() {
  const button = $("#mic");
  if (state.recorder) { state.recorder.stop(); return; }
  if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
    showError("This browser cannot record here (recording needs a secure page: localhost or https). Attach a recording instead.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(`The microphone could not be used: ${err.message}`);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  state.recorder = recorder;
  const started = Date.now();
  button.setAttribute("aria-pressed", "true");
  button.setAttribute("aria-label", "Stop recording and search");
  const timer = setInterval(() => { $("#understood").textContent = `Recording… ${clock((Date.now() - started) / 1000)} (press the microphone again to stop)`; }, 200);
  recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
  recorder.addEventListener("stop", () => {
    clearInterval(timer);
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-label", "Record a spoken question");
    const type = recorder.mimeType || "audio/webm";
    const file = new File(chunks, `voice-${new Date().toISOString().slice(11, 19).replaceAll(":", "")}.${type.includes("ogg") ? "ogg" : "webm"}`, { type });
    const language = $("#voice-lang").value;
    if (language) return searchSpoken(file, language);
    state.audio = { file, recorded: true };
    renderChips();
    runSearch();
  });
  recorder.start();
}

// A question spoken in a chosen language: heard in that language (no guessing: a Mandarin question is not taken
// for Thai), then searched as the words heard, which the address then states.
async function searchSpoken(file, language) {
  const name = $("#voice-lang").selectedOptions[0].textContent;
  clear($("#understood"), h("span", { class: "spinner", "aria-hidden": "true" }), ` Listening (${name})…`);
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("language", language);
  try {
    const heard = await api("/api/transcribe", { method: "POST", form });
    const words = (heard.segments || []).map((seg) => seg.text).join(" ").trim() || (heard.text || "").trim();
    if (!words) { clear($("#understood"), h("span", { class: "error", text: `No words were heard (${name}). Try again, closer to the microphone.` })); return; }
    $("#q").value = words.slice(0, MAX_QUERY);
    runSearch();
  } catch (err) {
    clear($("#understood"), h("span", { class: "error", text: err.message }));
  }
}
const voiceLanguage = $("#voice-lang");
voiceLanguage.value = localStorage.getItem("polymodal.voice-language") || "";
voiceLanguage.addEventListener("change", () => localStorage.setItem("polymodal.voice-language", voiceLanguage.value));

// --- drag and drop onto the search bar or the page ---------------------------------------------------------------
function dropTarget(zone, onFiles, { overlay = false } = {}) {
  let depth = 0;
  zone.addEventListener("dragenter", (event) => { event.preventDefault(); depth++; zone.classList.add("dragging"); if (overlay) $("#drop-overlay").hidden = false; });
  zone.addEventListener("dragover", (event) => event.preventDefault());
  zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; zone.classList.remove("dragging"); $("#drop-overlay").hidden = true; } });
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    $("#drop-overlay").hidden = true;
    onFiles(await droppedFiles(event.dataTransfer));
  });
}
dropTarget($("#view-search"), (files) => { if (attach(files[0]?.file)) runSearch(); }, { overlay: true });

// Files from a drop, folders walked (each with its relative path).
async function droppedFiles(transfer) {
  const entries = [...(transfer.items || [])].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...transfer.files].map((file) => ({ file, path: file.name }));
  const out = [];
  async function walk(entry, prefix) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  }
  for (const entry of entries) await walk(entry, "");
  return out.filter((f) => !f.file.name.startsWith("."));
}

// --- item view ----------------------------------------------------------------------------------------------------------
async function renderItem(id) {
  const view = clear($("#view-item"));
  if (!/^[1-9][0-9]{0,15}$/.test(id)) {  // not an item number: said so, without asking the service
    view.append(h("a", { class: "back", href: "#/" }, "← Search"),
      h("div", { class: "empty" }, h("strong", { text: "No such item" }), h("span", { text: `“${id.slice(0, 60)}” is not an item number; item addresses look like #/item/12.` })));
    return;
  }
  view.append(h("a", { class: "back", href: "#/", onclick: (e) => { if (history.length > 1) { e.preventDefault(); history.back(); } } }, "← Back"),
    h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), " Loading…"));
  let item;
  try {
    item = await api(`/api/items/${encodeURIComponent(id)}`);
  } catch (err) {
    view.lastChild.replaceWith(h("div", { class: "empty" }, h("strong", { text: err.status === 404 ? "No such item" : "The item could not be loaded" }), h("span", { text: err.message })));
    return;
  }
  document.title = `${item.name} · polymodal`;
  view.lastChild.remove();
  window.scrollTo(0, 0);
  const mediaPanel = h("div", { class: "panel media-view" });
  const evidencePanels = h("div");
  const side = h("div");
  view.append(
    h("div", { class: "item-head" },
      h("div", {}, h("span", { class: `kind ${item.modality}`, text: `${KIND[item.modality] || item.modality} · ${item.format} · ${bytes(item.size)}` }), h("h1", { text: item.name }), h("div", { class: "muted", text: item.path })),
      h("div", { class: "row" },
        h("a", { class: "secondary", href: `#/similar/${item.item}`, title: "Search the collection for items like this one" }, "Find similar"),
        h("a", { class: "secondary", href: item.media, target: "_blank", rel: "noopener" }, "Open file"),
        h("button", { type: "button", class: "danger", onclick: () => removeItem(item) }, "Remove"))),
    h("div", { class: "item-layout" }, h("div", {}, mediaPanel, evidencePanels), side));
  const audio = renderMedia(mediaPanel, item);
  renderEvidence(evidencePanels, item, audio);
  side.append(understandPanel(item), metaPanel(item));
  const similar = h("section", { class: "panel" }, h("h2", { text: "Similar items" }), h("p", { class: "muted" }, h("span", { class: "spinner" }), " Finding…"));
  side.append(similar);
  try {
    const data = await api(`/api/items/${item.item}/similar?k=6`);
    similar.lastChild.replaceWith(data.hits.length ? h("div", { class: "grid small" }, data.hits.map((hit, i) => card(hit, [], i))) : h("p", { class: "muted", text: "Nothing close." }));
  } catch (err) {
    similar.lastChild.replaceWith(h("p", { class: "error", text: err.message }));
  }
  if (!view.hidden && (document.activeElement === document.body || !document.activeElement)) $("#main").focus({ preventScroll: true });
}
function renderMedia(panel, item) {
  if (item.modality === "video") return renderVideo(panel, item);  // video.js
  if (item.modality === "image") {
    panel.append(h("img", { src: item.media, alt: item.evidence.filter((e) => e.kind === "label").slice(0, 3).map((e) => e.text).join(", ") || item.name }));
    return null;
  }
  if (item.modality === "audio") {
    const audio = h("audio", { id: "player", controls: true, preload: "metadata", src: item.media, "aria-label": `Play ${item.name}` });
    const start = Number(parseHash().params.get("t"));
    if (start) playFrom(audio, start);
    panel.append(soundBand(audio), audio);
    return audio;
  }
  panel.append(h("p", { class: "muted" }, `${item.meta.title ? `“${item.meta.title}” · ` : ""}${(item.meta.chars || 0).toLocaleString()} characters. `,
    h("a", { href: item.media, target: "_blank", rel: "noopener" }, "Open the document")));
  return null;
}
function renderEvidence(root, item, audio) {
  if (item.modality === "video") return renderTimeline(root, item, audio);  // video.js
  const of = (kind) => item.evidence.filter((e) => e.kind === kind);
  const transcript = of("transcript");
  if (transcript.length) {
    const list = h("ol", { class: "segments" });
    for (const seg of transcript) {
      list.append(h("li", {}, h("button", { type: "button", "data-start": seg.start, onclick: (e) => {
        $$(".segments button.playing").forEach((b) => b.classList.remove("playing"));
        e.currentTarget.classList.add("playing");
        if (audio) playFrom(audio, seg.start);
      } }, h("span", { class: "time", text: clock(seg.start) }), h("span", { text: seg.text }))));
    }
    root.append(h("section", { class: "panel" }, h("h2", { text: `Transcript${item.meta.language ? ` (${item.meta.language})` : ""}` }), list));
  }
  for (const [kind, titleText] of [["label", "What the image model sees"], ["tag", "What the sound model hears"]]) {
    const rows = of(kind);
    if (!rows.length) continue;
    const list = h("ul", { class: "bars" });
    for (const row of rows) {
      const bar = h("span");
      bar.style.width = pct(Math.min(1, Math.sqrt(row.score || 0)));
      list.append(h("li", {}, h("span", { text: row.text }), h("span", { class: "num", text: pct(row.score) }), h("span", { class: "bar", "aria-hidden": "true" }, bar)));
    }
    root.append(h("section", { class: "panel" }, h("h2", { text: titleText }), list));
  }
  const ocr = of("ocr");
  if (ocr.length) root.append(h("section", { class: "panel" }, h("h2", { text: "Text read in the image" }), h("ol", { class: "lines" }, ocr.map((e) => h("li", { text: e.text })))));
  const passages = of("passage");
  if (passages.length) {
    root.append(h("section", { class: "panel" }, h("h2", { text: `Passages (${passages.length})` }),
      h("div", { class: "passages" }, passages.map((p) => h("div", { class: "passage md" },
        p.page ? h("span", { class: "muted", text: `page ${p.page}` }) : null, markdown(p.text))))));
  }
}
function understandPanel(item) {
  const out = h("div", { class: "understood-answer", "aria-live": "polite" });
  const panel = h("section", { class: "panel" }, h("h2", { text: "Understand it" }));
  const describeBtn = h("button", { type: "button", class: "secondary" }, "Describe");
  describeBtn.addEventListener("click", async () => {
    const form = new FormData();
    form.append("item", item.item);
    await streamAnswer(out, "/api/describe", form, { working: "Describing…", render: renderDescription });
  });
  const input = h("input", { type: "text", placeholder: item.modality === "image" ? "Ask about this image…" : "Ask about this item…", "aria-label": "Your question", maxlength: 2000 });
  const askForm = h("form", { class: "inline-form" }, input, h("button", { type: "submit", class: "primary" }, "Ask"));
  askForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) { input.focus(); return; }
    const form = new FormData();
    form.append("item", item.item);
    form.append("question", input.value.trim());
    await streamAnswer(out, "/api/ask", form, { working: "Thinking…", render: (root, data) => renderAnswer(root, data, item) });
  });
  panel.append(h("div", { class: "row" }, describeBtn), askForm, out);
  return panel;
}
function renderDescription(root, data) {
  const caption = h("p", { class: "caption answer-text", text: data.caption || "" });
  add(root, caption,
    (data.timeline || []).length ? h("ul", { class: "evidence" }, data.timeline.map((line) => h("li", { text: line }))) : null,
    h("p", { class: "note", text: byLine("Worded by", data.by, data.used) }),
    (data.notes || []).map((n) => h("p", { class: "note", text: n })),
    detailsToggle(data.diagnostics));
  announce(data.caption, caption);
}
function renderAnswer(root, data, item = null) {
  const answer = h("p", { class: "caption answer-text", text: data.answer || "" });
  const evidence = (data.evidence || []).map((e) => ({ ...e, source: "", item: item ? item.item : e.item }));
  add(root, answer,
    data.reason ? h("p", { class: "note", text: `Why: ${data.reason}` }) : null,
    evidence.length ? h("h3", { text: "Evidence" }) : null,
    evidenceList(evidence, item),
    h("p", { class: "note", text: byLine("Answered by", data.by) }),
    (data.notes || []).map((n) => h("p", { class: "note", text: n })),
    detailsToggle(data.diagnostics));
  announce(data.answer, answer);
}
// "Worded by the qwen2.5-1.5b language model, from label, colour" — in words, never "undefined".
function byLine(prefix, by, used = null) {
  const who = !by ? "the evidence" : by === "template" ? "a template (no language model)" : by === "evidence" ? "the evidence directly"
    : by === "coverage" ? "what the evidence covers" : by === "extractive" ? "the closest evidence (no language model)" : by;
  const from = used && used.length ? `, from: ${used.join(", ")}` : "";
  return `${prefix} ${who}${from}`;
}
// Internal notes (why a caption was revised, ...) for the curious, folded away: never part of the answer.
function detailsToggle(diagnostics) {
  if (!diagnostics || !diagnostics.length) return null;
  return h("details", { class: "diagnostics" }, h("summary", { text: "Details" }),
    h("ul", {}, diagnostics.map((d) => h("li", { text: d }))));
}
// A finished answer, for whoever listens (e.g. a "speak the answer" button).
function announce(text, element) {
  if (!text) return;
  document.dispatchEvent(new CustomEvent("polymodal:answer", { detail: { text, element } }));
}

// --- answers as they are written --------------------------------------------------------------------------------------
const seconds = (s) => s < 90 ? `${Math.max(0, Math.round(s))} s` : `${Math.round(s / 60)} min`;
const running = new WeakMap();  // output element -> the AbortController of the answer being written there
// POST a task as server-sent events and show it live in `out`: what it is doing, the time spent against the
// estimate, the words as the model writes them, and a Cancel button (aborting the request makes the service stop
// the model). The finished answer replaces the draft through `render(out, data)`; returns the data (null if not).
async function streamAnswer(out, path, form, { working = "Working…", render, onEvent = null }) {
  running.get(out)?.abort();
  const controller = new AbortController();
  running.set(out, controller);
  const status = h("span", { class: "status-text", text: working });
  const time = h("span", { class: "elapsed" });
  const cancel = h("button", { type: "button", class: "secondary small cancel", onclick: () => controller.abort() }, "Cancel");
  const bar = h("div", { class: "working", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), status, time, cancel);
  const draft = h("p", { class: "answer-text draft", "aria-live": "off" });
  clear(out, bar, draft);
  const started = performance.now();
  let estimate = null;
  const tick = () => {
    const spent = (performance.now() - started) / 1000;
    time.textContent = !estimate ? seconds(spent) : spent <= estimate ? `${seconds(spent)} of about ${seconds(estimate)}` : `${seconds(spent)} (longer than the usual ${seconds(estimate)})`;
  };
  tick();
  const timer = setInterval(tick, 500);
  form.append("stream", "true");
  let result = null;
  try {
    const response = await api(path, { method: "POST", form, accept: "text/event-stream", signal: controller.signal });
    await readEvents(response, (name, data) => {
      if (name === "start" && data.estimate_seconds) estimate = data.estimate_seconds;
      else if ((name === "step" || name === "progress") && data.message) status.textContent = sentence(data.message);
      else if (name === "route" && data.route) status.textContent = `Routed to ${data.route}…`;
      if (name === "progress" && typeof data.seconds_left === "number") estimate = (performance.now() - started) / 1000 + data.seconds_left;
      else if (name === "token" && data.text) draft.append(data.text);
      else if (name === "error") throw new ApiError(data.error || "The task failed.", data.status || 500);
      else if (name === "answer") result = data;
      if (onEvent) onEvent(name, data, { draft, status });
      tick();
    });
  } catch (err) {
    if (err.name === "AbortError") {
      add(out, h("p", { class: "note stopped", text: draft.textContent.trim() ? "Stopped. The words above were not checked against the evidence." : "Stopped." }));
    } else {
      draft.remove();
      add(out, h("p", { class: "error", text: err.message }));
    }
  } finally {
    clearInterval(timer);
    bar.remove();
    if (running.get(out) === controller) running.delete(out);
  }
  if (result) { clear(out); render(out, result); }
  return result;
}
const sentence = (text) => text ? text[0].toUpperCase() + text.slice(1) + (/[.…!?]$/.test(text) ? "" : "…") : "";
function metaPanel(item) {
  const rows = [];
  for (const [key, value] of Object.entries(item.meta || {})) {
    if (value === null || value === undefined || value === "") continue;
    rows.push(h("dt", { text: key.replaceAll("_", " ") }), h("dd", { text: metaValue(key, value) }));
  }
  for (const [stage, model] of Object.entries(item.models || {})) rows.push(h("dt", { text: `${stage} model` }), h("dd", { text: model }));
  const panel = h("section", { class: "panel" }, h("h2", { text: "Details" }), h("dl", { class: "kv" }, rows));
  for (const note of item.notes || []) panel.append(h("p", { class: "note", text: note }));
  return panel;
}
function metaValue(key, value) {
  if (typeof value !== "number") return String(value);
  if (key === "duration" || key.endsWith("seconds")) return `${clock(value)} (${value.toFixed(1)} s)`;
  if (key.endsWith("probability")) return pct(value);
  return Number.isInteger(value) ? value.toLocaleString() : String(Math.round(value * 1000) / 1000);
}
// Remove: the item leaves the page at once and you go back to where you were; it is deleted for real after a few
// seconds, unless "Undo" is pressed (or sooner, if the page is closed).
const UNDO_SECONDS = 8;
const removals = new Map();  // item id -> { item, timer }
function removeItem(item) {
  hideError();
  const timer = setTimeout(() => commitRemoval(item.item), UNDO_SECONDS * 1000);
  removals.set(item.item, { item, timer });
  if (state.pagesSeen > 1) history.back();
  else location.hash = "#/";
  toast(`Removed ${item.name}${item.uploaded ? " (and its uploaded copy)" : ""}.`, "Undo", () => undoRemoval(item.item));
}
async function commitRemoval(id, { leaving = false } = {}) {
  const pending = removals.get(id);
  if (!pending) return;
  clearTimeout(pending.timer);
  removals.delete(id);
  if (leaving) { fetch(`/api/items/${id}`, { method: "DELETE", keepalive: true, credentials: "same-origin" }); return; }
  try {
    await api(`/api/items/${id}`, { method: "DELETE" });
    loadStats();
  } catch (err) {
    if (err.status !== 404) showError(`${pending.item.name} could not be removed: ${err.message}`);
  }
}
function undoRemoval(id) {
  const pending = removals.get(id);
  if (!pending) return;
  clearTimeout(pending.timer);
  removals.delete(id);
  for (const card of $$(`.card[data-item="${id}"]`)) card.hidden = false;
  toast(`${pending.item.name} is back.`);
}
window.addEventListener("pagehide", () => { for (const id of [...removals.keys()]) commitRemoval(id, { leaving: true }); });
function toast(message, action = null, onAction = null) {
  const el = $("#toast");
  clearTimeout(toast.timer);
  clear(el, h("span", { text: message }),
    action ? h("button", { type: "button", class: "secondary small", onclick: () => { el.hidden = true; onAction(); } }, action) : null);
  el.hidden = false;
  toast.timer = setTimeout(() => { el.hidden = true; }, (action ? UNDO_SECONDS : 4) * 1000);
}

// --- add files, index jobs ---------------------------------------------------------------------------------------------
function clickable(zone, input) {
  zone.addEventListener("click", (event) => { if (event.target === zone || !event.target.closest("button")) input.click(); });
  zone.addEventListener("keydown", (event) => { if ((event.key === "Enter" || event.key === " ") && event.target === zone) { event.preventDefault(); input.click(); } });
}
clickable($("#drop-add"), $("#add-files"));
$("#pick-files").addEventListener("click", () => $("#add-files").click());
$("#pick-folder").addEventListener("click", () => $("#add-folder").click());
for (const id of ["#add-files", "#add-folder"]) {
  $(id).addEventListener("change", (event) => {
    const files = [...event.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    event.target.value = "";
    upload(files);
  });
}
dropTarget($("#drop-add"), upload);

// Adding files: a list of every file chosen, each with its thumbnail and what became of it (indexed, a duplicate,
// skipped and why, failed and why), linked to its item once indexed.
const uploadLists = new Map();  // job id -> { list, rows: Map(name -> row), skipped: [{name, reason}] }
async function upload(files) {
  if (!files.length) return;
  hideError();
  const empty = files.filter((f) => !f.file.size);
  const sent = files.filter((f) => f.file.size > 0);
  const rows = new Map();
  const list = h("ul", { class: "upload-files", "aria-label": "Files of this upload" });
  for (const { file, path } of files) {
    const row = uploadRow(file, path);
    rows.set(path, row);
    list.append(row.el);
  }
  for (const { path } of empty) setRow(rows.get(path), "skipped", "empty file");
  const total = sent.reduce((n, f) => n + f.file.size, 0);
  const title = h("strong", { text: sent.length ? `Uploading ${sent.length} of ${files.length} file${files.length === 1 ? "" : "s"} (${bytes(total)})` : "Nothing to upload" });
  const pending = h("div", { class: "job" }, h("header", {}, title, sent.length ? h("span", { class: "spinner" }) : null), list);
  $("#jobs").prepend(pending);
  if (!sent.length) return;
  const form = new FormData();
  for (const { file, path } of sent) { form.append("files", file, file.name); form.append("paths", path); }
  try {
    const job = await api("/api/index", { method: "POST", form });
    pending.remove();
    uploadLists.set(job.id, { list, rows });
    for (const r of job.rejected || []) {
      const row = [...rows.entries()].find(([path]) => path.endsWith(r.name))?.[1];
      if (row) setRow(row, "skipped", r.reason);
    }
    for (const row of rows.values()) if (!row.state) setRow(row, "waiting", "waiting to be indexed");
    watchJob(job);
  } catch (err) {
    title.textContent = "The upload did not work";
    pending.querySelector(".spinner")?.remove();
    for (const row of rows.values()) if (!row.state) setRow(row, "failed", err.message);
    showError(err);
  }
}
function uploadRow(file, path) {
  const thumb = /^image\//.test(file.type) && file.size ? h("img", { src: URL.createObjectURL(file), alt: "", loading: "lazy" })
    : h("span", { class: "glyph", "aria-hidden": "true", text: /^audio\//.test(file.type) ? "♪" : /^video\//.test(file.type) ? "▶" : "¶" });
  const name = h("span", { class: "name", text: path });
  const statusEl = h("span", { class: "status muted" });
  return { el: h("li", {}, thumb, name, statusEl), name, statusEl, file, path, state: null };
}
const UPLOAD_STATUS = { indexed: "indexed", duplicate: "indexed; a duplicate of a file already in the collection", skipped: "skipped", failed: "failed", waiting: "waiting" };
function setRow(row, status, reason = null, item = null) {
  row.state = status;
  row.el.dataset.status = status;
  const said = status === "duplicate" && reason ? `indexed; a duplicate of ${reason}` : reason ? `${UPLOAD_STATUS[status]}: ${reason}` : UPLOAD_STATUS[status];
  clear(row.statusEl, status === "waiting" ? reason : said);
  row.el.className = status;
  if (status === "waiting") row.statusEl.prepend(h("span", { class: "spinner", "aria-hidden": "true" }), " ");
  if (item) clear(row.name, h("a", { href: `#/item/${item}`, text: row.path }));
}
async function showUploadOutcome(job) {
  const known = uploadLists.get(job.id);
  if (!known) return;
  try {
    const { files } = await api(`/api/jobs/${job.id}/files`);
    for (const f of files) {
      const row = known.rows.get(f.name) || [...known.rows.entries()].find(([path]) => path.endsWith(f.name))?.[1];
      if (row) setRow(row, f.status, f.reason, f.item);
    }
  } catch (err) { showError(err); }
}
const OUTCOMES = { analyzed: "indexed", reembedded: "updated", linked: "already in the collection (same content)", unchanged: "unchanged", failed: "failed", removed: "removed", skipped: "skipped" };
function jobCard(job) {
  let el = $(`#job-${job.id}`);
  if (!el) { el = h("div", { class: "job", id: `job-${job.id}` }); $("#jobs").prepend(el); }
  const bar = h("span");
  bar.style.width = job.total ? pct(job.done / job.total) : job.state === "done" ? "100%" : "0%";
  const cancel = ["queued", "running"].includes(job.state) ? h("button", { type: "button", class: "danger", onclick: () => api(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(showError) }, "Cancel") : null;
  const lines = [];
  const now = job.current ? ` · now: ${job.current.split("/").pop()}` : "";
  if (job.state === "running") lines.push(job.total ? `${job.done} of ${job.total} files${now}` : "Starting…");
  if (job.state === "queued") lines.push("Waiting for the indexing before it to finish…");
  if (job.report) {
    const o = Object.entries(job.report.outcomes || {}).filter(([, n]) => n);
    const words = o.map(([k, n]) => `${n} ${OUTCOMES[k] || k.replaceAll("_", " ")}`).join(", ");
    lines.push(`${job.report.files} file${job.report.files === 1 ? "" : "s"} in ${Math.round(job.report.seconds)} s${words ? `: ${words}` : ""}`);
  }
  if (job.error) lines.push(job.error);
  const listed = uploadLists.get(job.id);
  const problems = listed ? [] : [...(job.rejected || []).map((r) => `${r.name}: ${r.reason}`), ...((job.report?.errors) || []).map((e) => `${e.path.split("/").pop()}: ${e.reason}`)];
  clear(el,
    h("header", {}, h("strong", { text: job.label || "Indexing" }), h("span", { class: `state ${job.state}`, text: job.state }), cancel),
    h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": job.total || 1, "aria-valuenow": job.done || 0, "aria-label": `Indexing ${job.label || ""}` }, bar),
    lines.map((line) => h("small", { text: line })),
    problems.length ? h("ul", { class: "evidence" }, problems.slice(0, 20).map((p) => h("li", { class: "error", text: p }))) : null,
    listed ? listed.list : null,
    job.state === "done" ? h("p", {}, h("a", { href: "#/", text: "Search the collection →" })) : null);
}
async function watchJob(job) {
  jobCard(job);
  if (["done", "failed", "cancelled"].includes(job.state)) { showUploadOutcome(job); return; }
  try {
    const response = await api(`/api/jobs/${job.id}/events`, { accept: "text/event-stream" });
    await readEvents(response, (event, data) => {
      jobCard(data);
      if (event === "done") { loadStats(); showUploadOutcome(data); }
    });
  } catch (err) { showError(err); }
}
async function refreshJobs() {
  try {
    const { jobs } = await api("/api/jobs");
    for (const job of jobs.slice().reverse()) { if (!$(`#job-${job.id}`)) watchJob(job); }
  } catch (err) { if (err.status !== 401) showError(err); }
}

// --- analyze a bundle -----------------------------------------------------------------------------------------------------
function fileList(listEl, files, onChange) {
  clear(listEl, ...files.map((file, i) => h("li", {}, `${file.name} · ${bytes(file.size)}`,
    h("button", { type: "button", "aria-label": `Remove ${file.name}`, onclick: () => { files.splice(i, 1); onChange(); } }, "×"))));
}
function refreshAnalyzeList() {
  fileList($("#analyze-list"), state.analyzeFiles, refreshAnalyzeList);
  $("#analyze-run").disabled = !state.analyzeFiles.length;
}
clickable($("#drop-analyze"), $("#analyze-files"));
$("#analyze-files").addEventListener("change", (event) => { state.analyzeFiles.push(...event.target.files); event.target.value = ""; refreshAnalyzeList(); });
dropTarget($("#drop-analyze"), (files) => { state.analyzeFiles.push(...files.map((f) => f.file)); refreshAnalyzeList(); });
$("#analyze-run").addEventListener("click", async () => {
  const out = $("#analyze-result");
  const button = $("#analyze-run");
  button.disabled = true;
  const form = new FormData();
  for (const file of state.analyzeFiles) form.append("files", file, file.name);
  form.append("phrase", String($("#analyze-phrase").checked));
  const count = state.analyzeFiles.length;
  await streamAnswer(out, "/api/analyze", form, {
    working: `Reading ${count} file${count === 1 ? "" : "s"}…`,
    render: renderReport,
    onEvent: (name, data, { draft }) => {
      if (name === "token" && !draft.dataset.titled) { draft.dataset.titled = "1"; draft.before(h("h3", { text: "Summary (being written)" })); }
    },
  });
  button.disabled = !state.analyzeFiles.length;
});
function renderReport(out, report) {
  const panel = h("section", { class: "panel md", id: "report" });
  if (report.markdown) panel.append(markdown(report.markdown));
  else panel.append(h("pre", { class: "answer-text", text: report.text || JSON.stringify(report, null, 2) }));
  add(panel, detailsToggle([...(report.diagnostics || []), ...(report.items || []).flatMap((i) => (i.diagnostics || []).map((d) => `${i.name}: ${d}`))]));
  out.append(panel);
  announce(report.summary, panel.querySelector("h3 + p") || panel);
}
// A small, safe Markdown reader for reports: headings, lists, tables, quotes, code blocks, **bold**, _em_, `code`.
function markdown(source) {
  const root = h("div");
  let list = null;
  let table = null;
  let code = null;
  const inline = (text) => {
    const frag = document.createDocumentFragment();
    for (const part of text.split(/(\*\*[^*]+\*\*|`[^`]+`|(?<![\w])_[^_]+_(?![\w]))/u)) {
      if (part.startsWith("**") && part.endsWith("**") && part.length > 4) frag.append(h("strong", { text: part.slice(2, -2) }));
      else if (part.startsWith("`") && part.endsWith("`") && part.length > 2) frag.append(h("code", { text: part.slice(1, -1) }));
      else if (part.startsWith("_") && part.endsWith("_") && part.length > 2) frag.append(h("em", { class: "muted", text: part.slice(1, -1) }));
      else frag.append(part);
    }
    return frag;
  };
  for (const line of source.split("\n")) {
    if (line.startsWith("```")) {
      if (code) code = null;
      else { code = h("pre", { class: "code" }); root.append(code); }
      continue;
    }
    if (code) { code.append(line + "\n"); continue; }
    const heading = line.match(/^(#{1,4})\s+(.*)/);
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)/);
    const quote = line.match(/^>\s?(.*)/);
    const row = line.trim().startsWith("|") ? line.trim().slice(1, -1).split("|").map((c) => c.trim()) : null;
    if (!item) list = null;
    if (!row) table = null;
    if (heading) root.append(h(`h${Math.min(4, heading[1].length + 1)}`, {}, inline(heading[2])));
    else if (item) { if (!list) { list = h("ul"); root.append(list); } list.append(h("li", {}, inline(item[1]))); }
    else if (quote) root.append(h("blockquote", {}, inline(quote[1])));
    else if (row) {
      if (row.every((c) => /^:?-{2,}:?$/.test(c))) continue;
      if (!table) { table = h("table"); root.append(table); table.append(h("tr", {}, row.map((c) => h("th", {}, inline(c))))); }
      else table.append(h("tr", {}, row.map((c) => h("td", {}, inline(c)))));
    } else if (line.trim()) root.append(h("p", {}, inline(line)));
  }
  return root;
}

// --- assistant --------------------------------------------------------------------------------------------------------------
for (const button of $$("#view-ask .seg")) {
  button.addEventListener("click", () => {
    state.ask = button.dataset.ask;
    for (const other of $$("#view-ask .seg")) { other.setAttribute("aria-checked", String(other === button)); other.tabIndex = other === button ? 0 : -1; }
  });
}
function refreshAskList() { fileList($("#ask-list"), state.askFiles, refreshAskList); }
$("#ask-attach").addEventListener("click", () => $("#ask-files").click());
$("#ask-files").addEventListener("change", (event) => { state.askFiles.push(...event.target.files); event.target.value = ""; refreshAskList(); });
dropTarget($("#ask-form"), (files) => { state.askFiles.push(...files.map((f) => f.file)); refreshAskList(); });
// Evidence lines; a time plays that moment: of the item (its page, from there), or of the attached file.
function evidenceList(items, item = null, files = []) {
  if (!items.length) return null;
  const player = h("audio", { controls: true, hidden: true, class: "evidence-player" });
  let playerUrl = null;
  const play = (e) => {
    const file = files.find((f) => f.name === e.source);
    if (!file) return;
    if (playerUrl) URL.revokeObjectURL(playerUrl);
    playerUrl = URL.createObjectURL(file);
    player.src = playerUrl;
    player.hidden = false;
    playFrom(player, e.start);
  };
  const when = (e) => {
    if (e.start === undefined || e.start === null) return null;
    if (item && $("#player")) return h("button", { type: "button", class: "time", title: "Play from this moment", onclick: () => playFrom($("#player"), e.start) }, `▶ ${clock(e.start)}`);
    const id = e.item ?? (item ? item.item : null);
    if (id !== null && id !== undefined) return h("a", { class: "time", href: `#/item/${id}?t=${Math.floor(e.start)}`, title: "Play from this moment" }, `▶ ${clock(e.start)}`);
    if (files.some((f) => f.name === e.source)) return h("button", { type: "button", class: "time", title: "Play from this moment", onclick: () => play(e) }, `▶ ${clock(e.start)}`);
    return h("span", { class: "src", text: clock(e.start) });
  };
  return h("div", {}, h("ul", { class: "evidence" }, items.slice(0, 15).map((e) => h("li", {},
    e.source ? h("span", { class: "src", text: `${e.source} · ` }) : null,
    h("span", { class: "src", text: `${e.kind || "evidence"}: ` }), when(e), e.start !== undefined && e.start !== null ? " " : null,
    e.text || ""))), player);
}
$("#ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("#ask-text").value.trim();
  if (!text && !state.askFiles.length) { $("#ask-text").focus(); return; }
  const out = $("#ask-result");
  const panel = h("section", { class: "panel" });
  clear(out, panel);
  const form = new FormData();
  form.append("ask", state.ask || text || "describe");
  if (text) form.append("text", text);
  const files = [...state.askFiles];
  for (const file of files) form.append("files", file, file.name);
  await streamAnswer(panel, "/api/assistant", form, {
    working: "Working…",
    render: (root, data) => renderAssistant(root, data, files),
  });
});
function renderAssistant(root, data, files) {
  const answer = h("p", { class: "answer-text", text: data.answer || "" });
  const evidence = (data.evidence || []).map((e) => ({ ...e, item: e.item ?? (data.items || {})[e.source] }));
  add(root, answer,
    h("p", { class: "note", text: byLine(data.route ? `${sentence(data.route).replace(/…$/, "")}; answered by` : "Answered by", data.by) }),
    (data.notes || []).map((n) => h("p", { class: "note", text: n })),
    evidence.length ? h("h3", { text: "Evidence" }) : null,
    evidenceList(evidence, null, files),
    detailsToggle(data.diagnostics));
  announce(data.answer, answer);
}

// --- keyboard, stats, start ---------------------------------------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "");
  if (event.key === "/" && !typing) {
    event.preventDefault();
    if ($("#view-search").hidden) {  // back to the search, as it was
      location.hash = state.lastSearchUrl || "#/";
      show("search");
    }
    $("#q").focus();
  }
  if (event.key === "Escape" && document.activeElement === $("#q")) $("#q").blur();
});
// The kind filters say how many items of each kind there are; a kind the collection has none of is not offered.
function showFilterCounts(per, total) {
  for (const button of $$(".filters .seg")) {
    const kind = button.dataset.modality;
    const count = kind ? per[kind] || 0 : total || 0;
    let badge = $(".count", button);
    if (!badge) { badge = h("span", { class: "count" }); button.append(" ", badge); }
    badge.textContent = count.toLocaleString();
    button.hidden = Boolean(kind) && !count && state.modality !== kind;
  }
}
async function loadStats() {
  try {
    const status = await api("/api/status");
    const per = status.per_modality || {};
    $("#stats").textContent = `${status.files} items · ${per.image || 0} images · ${per.audio || 0} recordings · ${per.video ? `${per.video} videos · ` : ""}${per.text || 0} documents`;
    showFilterCounts(per, status.files);
  } catch { $("#stats").textContent = ""; }
}
async function start() {
  try {
    const health = await api("/api/health");
    if (health.auth_required) {
      const who = await fetch("/api/whoami", { credentials: "same-origin" });
      if (who.status === 401) { askForKey(); return; }
    }
  } catch (err) { showError(err); }
  loadStats();
  route();
}
start();
