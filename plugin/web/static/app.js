// samestyle search page. Plain JS, no build step: talks to the JSON API of `samestyle serve`.
// Every search shows its CLI equivalent and its JSON request, built from the same state.
"use strict";

const FIELDS = ["image", "text", "fused"];
const HIDDEN = new Set(["id", "title", "image_uri", "category", "content_hash", "model_version", "has_image",
                        "has_text", "image_vec", "text_vec", "fused_vec"]);
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = { mode: "text", photo: null, photoName: "photo.jpg", seq: 0, facets: null, lastRun: null };

// -- shell and request builders -------------------------------------------------------------
function shq(s) {
  s = String(s);
  return /^[A-Za-z0-9_.,=:/@%+-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

function tuning() {
  const fields = $$("input[name=field]:checked").map((c) => c.value);
  const o = { k: clampInt($("#t-k").value, 1, 100, 12) };
  if (fields.length) o.fields = fields;
  if (fields.length > 1) {
    o.weights = {};
    for (const f of fields) o.weights[f] = Number($(`[data-weight=${f}]`).value);
  }
  const ranker = $("#t-ranker").value;
  if (ranker !== "weighted") o.ranker = ranker;
  const colour = $("#t-colour").value;  // "": the search type's default (the API's DEFAULT_COLOUR)
  if (colour !== "") o.colour = Number(colour);
  const filters = {};
  for (const sel of $$("#filters select")) if (sel.value !== "") filters[sel.name] = sel.value;
  if (Object.keys(filters).length) o.filters = filters;
  if ($("#t-group").value) o.group_by = $("#t-group").value;
  const floor = $("#t-floor").value.trim();
  if (floor !== "" && !Number.isNaN(Number(floor))) o.floor = Number(floor);
  return o;
}

function clampInt(v, lo, hi, dflt) {
  const n = parseInt(v, 10);
  return Number.isNaN(n) ? dflt : Math.min(hi, Math.max(lo, n));
}

function optionArgs(o) {
  const a = [];
  if (o.fields) a.push("--fields", o.fields.join(","));
  if (o.weights) a.push("--weights", Object.entries(o.weights).map(([f, w]) => `${f}=${w}`).join(","));
  if (o.ranker) a.push("--ranker", o.ranker);
  if (o.colour !== undefined) a.push("--colour", String(o.colour));
  for (const [k, v] of Object.entries(o.filters || {})) a.push("--filter", `${k}=${v}`);
  if (o.group_by) a.push("--group-by", o.group_by);
  if (o.floor !== undefined) a.push("--floor", String(o.floor));
  a.push("-k", String(o.k));
  return a;
}

// What the current mode would send: {path, body, cli, multipart?} or an error string.
function buildRequest() {
  const o = tuning();
  if (state.mode === "text") {
    const text = $("#q-text").value.trim();
    if (!text) return "Type some words to search.";
    const target = $("#q-target").value;
    const body = { text, ...(target !== "text" ? { target } : {}), ...o };
    const cli = ["samestyle", "search", "--text", text, ...(target !== "text" ? ["--target", target] : []), ...optionArgs(o)];
    return { path: "/v1/search/text", body, cli };
  }
  if (state.mode === "product") {
    const id = $("#q-product").value.trim();
    if (!id) return "Give a product id.";
    return { path: "/v1/search/product", body: { id, ...o }, cli: ["samestyle", "search", "--product", id, ...optionArgs(o)] };
  }
  if (state.mode === "photo") {
    if (!state.photo) return "Choose, drop or paste a photo.";
    const modifier = $("#q-modifier").value.trim();
    const body = { image_b64: `<base64 of ${state.photoName}>`, ...(modifier ? { modifier } : {}), ...o };
    const cli = ["samestyle", "search", "--image", state.photoName, ...(modifier ? ["--modifier", modifier] : []), ...optionArgs(o)];
    return { path: "/v1/search/photo", body, cli, multipart: { modifier, options: o } };
  }
  const body = { threshold: Number($("#d-threshold").value), field: $("#d-field").value };
  const cat = $("#d-category").value;
  if (cat) body.category = cat;
  const cli = ["samestyle", "dedup", "--threshold", String(body.threshold), "--field", body.field,
               ...(cat ? ["--filter", `category=${cat}`] : [])];
  return { path: "/v1/dedup", body, cli };
}

function showEquivalent(req) {
  if (typeof req === "string") { $("#cli").textContent = ""; $("#json").textContent = ""; return; }
  $("#cli").textContent = [...req.cli, "--json"].map(shq).join(" ");
  $("#json-label").textContent = `POST ${req.path}` + (req.multipart ? " (or multipart: photo, modifier, options)" : "");
  $("#json").textContent = JSON.stringify(req.body, null, 2);
}

// -- talking to the API -------------------------------------------------------------------------
async function api(path, { body, form, method = "POST" } = {}) {
  let resp;
  try {
    resp = await fetch(path, form ? { method, body: form }
      : body === undefined ? { method } : { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) {
    throw { code: "unreachable", message: `the samestyle server did not answer (${e.message})`, fix: "is `samestyle serve` running?" };
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { /* not JSON: reported below */ }
  if (!resp.ok) throw (data && data.error) || { code: `http_${resp.status}`, message: `HTTP ${resp.status} ${resp.statusText}` };
  return data;
}

function showError(err) {
  const box = $("#error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = `${err.code || "error"}: ${err.message || err}` + (err.fix ? `\nfix: ${err.fix}` : "");
  box.hidden = false;
  document.body.dataset.state = "error";
}

let timer = null;
function schedule() { clearTimeout(timer); timer = setTimeout(run, 250); }

async function run() {
  clearTimeout(timer);
  const req = buildRequest();
  showEquivalent(req);
  if (typeof req === "string") { $("#summary").textContent = req; return; }
  const seq = ++state.seq;
  document.body.dataset.state = "loading";
  try {
    let data;
    if (req.multipart) {
      const form = new FormData();
      form.append("photo", state.photo, state.photoName);
      if (req.multipart.modifier) form.append("modifier", req.multipart.modifier);
      form.append("options", JSON.stringify(req.multipart.options));
      data = await api(req.path, { form });
    } else {
      data = await api(req.path, { body: req.body });
    }
    if (seq !== state.seq) return;  // a newer search is on its way
    showError(null);
    if (state.mode === "dedup") renderClusters(data); else renderHits(data);
    state.lastRun = req;
    document.body.dataset.state = "done";
  } catch (err) {
    if (seq !== state.seq) return;
    showError(err);
  }
  // Finished searches, counted: lets a test (or a screen reader hook) wait for "the next result".
  document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
}

// -- rendering ----------------------------------------------------------------------------------
function photo(ent, size) {
  if (ent.has_image === false || !ent.content_hash) return placeholder("no photo", size);
  const img = document.createElement("img");
  img.src = `/v1/thumbs/${encodeURIComponent(ent.content_hash)}`;
  img.alt = ent.title || ent.id;
  img.loading = "lazy";
  img.width = size; img.height = size;
  img.addEventListener("error", () => img.replaceWith(placeholder("photo not available", size)), { once: true });
  return img;
}

function placeholder(text, size) {
  const d = document.createElement("div");
  d.className = "nophoto"; d.textContent = text; d.style.aspectRatio = "1"; d.style.minHeight = `${size / 2}px`;
  return d;
}

const short = (f) => f.replace(/_vec$/, "");

function renderHits(data) {
  $("#clusters").replaceChildren();
  const grid = $("#grid");
  grid.replaceChildren();
  const searched = new Set(data.fields.map(short));
  const w = Object.entries(data.weights).map(([f, v]) => `${short(f)} ${v.toFixed(2)}`).join(", ");
  $("#summary").textContent = `${data.hits.length} hits · ${data.search_type} search · fields ${[...searched].join("+")}`
    + (data.fields.length > 1 ? ` (${data.ranker}; ${w}; profile ${data.profile})` : "")
    + (data.filter ? ` · filter ${data.filter}` : "") + ` · ${Math.round(data.took_ms)} ms`;
  if (data.colour != null) {  // null: the collection's model keeps no colour apart, so no weight applies
    const c = document.createElement("span");
    c.id = "summary-colour";
    c.title = "how much the query's colour counted (0 = any colour, 1 = this colour)";
    c.textContent = ` · colour ${Number(data.colour).toFixed(2)}`;
    $("#summary").appendChild(c);
  }
  for (const hit of data.hits) {
    const li = $("#card-tpl").content.firstElementChild.cloneNode(true);
    const ent = { ...hit.entity, id: hit.id };
    li.dataset.id = hit.id;
    li.querySelector("img").replaceWith(photo(ent, 160));
    li.querySelector(".title").textContent = ent.title || "(no title)";
    li.querySelector(".sub").textContent = `${hit.rank}. ${hit.id} · ${ent.category || ""}`;
    const attrs = li.querySelector(".attrs");
    attrs.textContent = Object.entries(ent)
      .filter(([k, v]) => !HIDDEN.has(k) && v !== null && v !== "" && typeof v !== "object")
      .map(([k, v]) => `${k}: ${v}`).join(" · ");
    attrs.title = attrs.textContent;  // clipped to three lines; the whole list on hover
    const bars = li.querySelector(".bars");
    bars.setAttribute("aria-label", `per-field similarity, ${short(hit.matched)} carried it`);
    for (const f of FIELDS) {
      const s = hit.scores[`${f}_vec`] ?? hit.scores[f];
      if (s === undefined) continue;
      const bar = document.createElement("div");
      bar.className = "bar" + (short(hit.matched) === f ? " matched" : "") + (searched.has(f) ? "" : " unsearched");
      bar.dataset.field = f;
      bar.title = `${f} cosine ${s.toFixed(3)}` + (searched.has(f) ? "" : " (not searched)");
      bar.innerHTML = `<span>${f}${short(hit.matched) === f ? " ★" : ""}</span><div class="track"><div class="fill"></div></div><span>${s.toFixed(2)}</span>`;
      bar.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, s)) * 100}%`;
      bars.appendChild(bar);
    }
    const more = () => moreOf(hit.id);
    li.querySelector(".more").addEventListener("click", more);
    li.querySelector(".more").setAttribute("aria-label", `More of the style of ${hit.id}`);
    li.firstElementChild.addEventListener("click", more);
    grid.appendChild(li);
  }
  if (!data.hits.length) $("#summary").textContent += " · nothing matched (loosen the filters or the floor)";
}

function renderClusters(data) {
  $("#grid").replaceChildren();
  const box = $("#clusters");
  box.replaceChildren();
  $("#summary").textContent = `${data.clusters} clusters (${data.clustered} of ${data.products} products) at `
    + `${data.field} ≥ ${data.threshold}` + (data.shown.length < data.clusters ? ` · largest ${data.shown.length} shown` : "")
    + ` · ${Math.round(data.took_ms)} ms`;
  data.shown.forEach((c, n) => {
    const sec = document.createElement("section");
    sec.className = "cluster";
    sec.dataset.size = c.size;
    const h = document.createElement("h3");
    h.textContent = `${n + 1}. ${c.size} products · ${c.category} · score ${c.score_min}–${c.score_max}`;
    const ol = document.createElement("ol");
    ol.className = "strip";
    for (const m of c.members) {
      const li = document.createElement("li");
      li.dataset.id = m.id;
      li.append(photo(m, 120));
      const b = document.createElement("button");
      b.type = "button"; b.className = "more"; b.textContent = m.id;
      b.title = `${m.title} — same style`;
      b.addEventListener("click", () => moreOf(m.id));
      const t = document.createElement("div");
      t.className = "muted"; t.textContent = m.title || "";
      li.append(b, t);
      ol.appendChild(li);
    }
    sec.append(h, ol);
    box.appendChild(sec);
  });
}

function moreOf(id) {
  $("#q-product").value = id;
  setMode("product");
  run();
  $("#results").focus();
}

// -- controls -----------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  for (const b of $$("#modes button")) b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  for (const f of $$("#query form")) f.hidden = f.dataset.mode !== mode;
  for (const el of $$(".search-only")) el.hidden = mode === "dedup";
  showEquivalent(buildRequest());
}

function setPhoto(file) {
  if (!file || !file.type.startsWith("image/")) { showError({ code: "bad_photo", message: "that is not an image file" }); return; }
  state.photo = file;
  state.photoName = file.name && file.name !== "image.png" ? file.name : "pasted.png";
  const prev = $("#q-photo-preview");
  prev.src = URL.createObjectURL(file);
  prev.hidden = false;
}

async function loadFacets() {
  try {
    const f = await api("/v1/ui/facets", { method: "GET" });
    state.facets = f;
    $("#collection").textContent = `${f.collection} · model ${f.model_version || "?"}`;
    const box = $("#filters");
    for (const [name, values] of Object.entries(f.values)) {
      const label = document.createElement("label");
      label.textContent = name;
      const sel = document.createElement("select");
      sel.name = name; sel.id = `f-${name}`;
      sel.append(new Option("any", ""), ...values.map((v) => new Option(v, v)));
      sel.addEventListener("change", schedule);
      label.appendChild(sel);
      box.appendChild(label);
    }
    for (const g of f.group_by) $("#t-group").append(new Option(g, g));
    for (const c of f.values.category || []) $("#d-category").append(new Option(c, c));
  } catch (err) {
    showError(err);
  }
}

function init() {
  for (const b of $$("#modes button")) b.addEventListener("click", () => { setMode(b.dataset.mode); if (b.dataset.mode === "dedup") run(); });
  $("#modes").addEventListener("keydown", (e) => {  // arrow keys move between tabs
    const tabs = $$("#modes button");
    const i = tabs.indexOf(document.activeElement);
    if (i < 0 || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus(); next.click();
  });
  for (const f of $$("#query form")) f.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("#q-photo").addEventListener("change", (e) => { setPhoto(e.target.files[0]); run(); });
  const drop = $("#form-photo");
  drop.addEventListener("dragover", (e) => e.preventDefault());
  drop.addEventListener("drop", (e) => { e.preventDefault(); setPhoto(e.dataTransfer.files[0]); run(); });
  document.addEventListener("paste", (e) => {
    const item = Array.from(e.clipboardData?.items || []).find((i) => i.type.startsWith("image/"));
    if (!item) return;
    e.preventDefault();
    setMode("photo"); setPhoto(item.getAsFile()); run();
  });
  for (const c of $$("input[name=field]")) {
    c.addEventListener("change", () => {
      $(`[data-weight=${c.value}]`).disabled = !c.checked;
      schedule();
    });
  }
  for (const r of $$("[data-weight]")) {
    r.addEventListener("input", () => { $(`[data-weight-out=${r.dataset.weight}]`).textContent = Number(r.value).toFixed(2); schedule(); });
  }
  for (const el of ["#t-ranker", "#t-colour", "#t-k", "#t-group", "#t-floor", "#q-target", "#d-field", "#d-category"]) {
    $(el).addEventListener("change", schedule);
  }
  $("#d-threshold").addEventListener("input", () => { $("#d-threshold-out").textContent = $("#d-threshold").value; schedule(); });
  for (const b of $$(".copy")) {
    b.addEventListener("click", async () => {
      const text = $(`#${b.dataset.copy}`).textContent;
      try { await navigator.clipboard.writeText(text); b.textContent = "Copied"; } catch (e) { b.textContent = "Select + Ctrl-C"; }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    });
  }
  loadFacets();
  showEquivalent(buildRequest());
  document.body.dataset.state = "ready";
}

document.addEventListener("DOMContentLoaded", init);
