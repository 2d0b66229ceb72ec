// The KV console: a thin client of /console/api. Data goes into the page as text nodes only
// (never as HTML), and the CSRF token lives in this script's memory, never in the page.
"use strict";

const API = "/console/api";
let csrf = null;

// ---- helpers ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = kind || "info";
  box.hidden = !text;
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf || "";
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  let envelope = null;
  try {
    envelope = await response.json();
  } catch (_) {
    envelope = null;
  }
  if (response.status === 401 && path !== "/login") {
    csrf = null;
    render();
    throw new ApiFailure(401, "Signed out: sign in again.");
  }
  if (!response.ok || !envelope || !envelope.success) {
    const message = envelope && envelope.errors && envelope.errors[0]
      ? envelope.errors[0].message
      : `HTTP ${response.status}`;
    throw new ApiFailure(response.status, message);
  }
  return envelope.result;
}

function q(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, v);
  const text = search.toString();
  return text ? "?" + text : "";
}

function enc(part) {
  return encodeURIComponent(part);
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/namespaces";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

// Set when the script itself navigates after an action, so the action's message stays.
let keepMessage = false;

function go(hash) {
  if (location.hash === hash) render();
  else {
    keepMessage = true;
    location.hash = hash;
  }
}

function duration(seconds) {
  if (seconds <= 0) return "expired";
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const out = [];
  for (const [name, size] of units) {
    if (seconds >= size || (name === "s" && out.length === 0)) {
      out.push(Math.floor(seconds / size) + name);
      seconds %= size;
    }
    if (out.length === 2) break;
  }
  return out.join(" ");
}

function expiryText(expiration, now) {
  if (!expiration) return "never";
  return `${new Date(expiration * 1000).toISOString()} (in ${duration(expiration - now)})`;
}

function view(...children) {
  const el = document.getElementById("view");
  el.replaceChildren(...children.flat(2).filter((child) => child !== null && child !== undefined));
}

function failed(error) {
  show(error.message, "error");
}

// ---- session ----

async function session() {
  const result = await api("GET", "/session");
  csrf = result.csrf;
  return result;
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  try {
    const result = await api("POST", "/login", { token: input.value });
    csrf = result.csrf;
    input.value = "";
    show("", "");
    render();
  } catch (error) {
    input.value = "";
    if (error.status === 403) await session();
    failed(error);
  }
}

async function signOut() {
  try {
    await api("POST", "/logout");
  } catch (error) {
    failed(error);
  }
  csrf = null;
  location.hash = "#/namespaces";
  render();
}

// ---- namespaces ----

async function namespacesPage() {
  const list = await api("GET", "/namespaces");
  const rows = list.map((ns) => {
    const count = h("td", { class: "count", text: "…" });
    api("GET", `/namespaces/${enc(ns.id)}/count`).then(
      (c) => { count.textContent = c.more ? `${c.count}+` : String(c.count); },
      () => { count.textContent = "?"; });
    const actions = h("td", { class: "actions" });
    const renameButton = h("button", { type: "button", class: "rename", onclick: () => renameForm(ns, actions) }, "Rename");
    const deleteButton = h("button", { type: "button", class: "delete danger", onclick: () => deleteForm(ns, actions) }, "Delete");
    actions.append(renameButton, deleteButton);
    return h("tr", { "data-title": ns.title },
      h("td", {}, h("a", { href: `#/ns/${enc(ns.id)}`, class: "ns-link" }, ns.title)),
      h("td", { class: "mono" }, ns.id), count, actions);
  });
  const title = h("input", { id: "new-namespace", placeholder: "TITLE", required: true });
  const create = h("form", {
    id: "create-namespace-form",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const created = await api("POST", "/namespaces", { title: title.value });
        show(`Created ${created.title}.`, "ok");
        go(`#/ns/${enc(created.id)}`);
      } catch (error) { failed(error); }
    },
  }, title, h("button", { type: "submit", id: "create-namespace" }, "Create namespace"));
  view(h("h1", {}, "Namespaces"),
    h("table", { id: "namespaces" },
      h("thead", {}, h("tr", {}, h("th", {}, "Title"), h("th", {}, "Id"), h("th", {}, "Keys"), h("th", {}, ""))),
      h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, "No namespaces yet."),
    create);
}

function renameForm(ns, cell) {
  const input = h("input", { class: "rename-title", value: ns.title, required: true });
  cell.replaceChildren(h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api("PUT", `/namespaces/${enc(ns.id)}`, { title: input.value });
        show(`Renamed to ${input.value}.`, "ok");
        render();
      } catch (error) { failed(error); }
    },
  }, input, h("button", { type: "submit" }, "Save"), h("button", { type: "button", onclick: render }, "Cancel")));
  input.focus();
}

function deleteForm(ns, cell) {
  const input = h("input", { id: "confirm-delete", placeholder: ns.title, autocomplete: "off" });
  const button = h("button", { type: "submit", id: "confirm-delete-button", class: "danger", disabled: true }, "Delete forever");
  input.addEventListener("input", () => { button.disabled = input.value !== ns.title; });
  cell.replaceChildren(h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await api("DELETE", `/namespaces/${enc(ns.id)}`, { confirm: input.value });
        show(`Deleted ${ns.title} and all its keys.`, "ok");
        render();
      } catch (error) { failed(error); }
    },
  }, h("label", {}, "Type ", h("strong", {}, ns.title), " to delete it and all its keys: "), input, button,
  h("button", { type: "button", onclick: render }, "Cancel")));
  input.focus();
}

// ---- keys ----

async function keysPage(id, params) {
  const prefix = params.get("prefix") || "";
  const cursor = params.get("cursor") || "";
  const page = await api("GET", `/namespaces/${enc(id)}/keys${q({ prefix, cursor })}`);
  const search = h("input", { id: "prefix", value: prefix, placeholder: "key prefix" });
  const rows = page.keys.map((key) => h("tr", {},
    h("td", {}, h("a", { class: "key-link", href: `#/ns/${enc(id)}/key/${enc(key.name)}` }, key.name)),
    h("td", {}, expiryText(key.expiration, page.now)),
    h("td", { class: "mono" }, key.metadata === null || key.metadata === undefined ? "" : JSON.stringify(key.metadata))));
  const next = page.list_complete ? null : h("a", {
    id: "next-page", class: "button", href: `#/ns/${enc(id)}${q({ prefix, cursor: page.cursor })}`,
  }, "Next page");
  const first = cursor ? h("a", { id: "first-page", class: "button", href: `#/ns/${enc(id)}${q({ prefix })}` }, "First page") : null;
  view(h("h1", {}, h("a", { href: "#/namespaces" }, "Namespaces"), " / ", h("span", { id: "ns-title" }, id)),
    h("form", {
      id: "search",
      onsubmit: (event) => { event.preventDefault(); go(`#/ns/${enc(id)}${q({ prefix: search.value })}`); },
    }, search, h("button", { type: "submit", id: "search-button" }, "Search")),
    h("table", { id: "keys" },
      h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Expires"), h("th", {}, "Metadata"))),
      h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, prefix ? `No keys start with “${prefix}”.` : "No keys."),
    h("p", { class: "paging" }, first, next),
    newKeyForm(id), bulkForm(id));
  // The title, not the id, once known (one catalog read; the catalog is small).
  api("GET", "/namespaces").then((all) => {
    const ns = all.find((n) => n.id === id);
    if (ns) document.getElementById("ns-title").textContent = ns.title;
  }, () => {});
}

function expiryFields(prefix) {
  const ttl = h("input", { id: `${prefix}-ttl`, type: "number", min: "60", placeholder: "seconds (≥ 60)" });
  return { ttl, fields: h("label", {}, "TTL ", ttl) };
}

function parseMetadata(text) {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiFailure(400, `metadata is not JSON: ${error.message}`);
  }
}

function newKeyForm(id) {
  const key = h("input", { id: "new-key", placeholder: "key", required: true });
  const value = h("textarea", { id: "new-value", rows: "4", placeholder: "value" });
  const metadata = h("textarea", { id: "new-metadata", rows: "2", placeholder: "metadata (JSON, optional)" });
  const { ttl, fields } = expiryFields("new");
  return h("form", {
    id: "new-key-form",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const body = { key: key.value, value: value.value, metadata: parseMetadata(metadata.value) };
        if (ttl.value) body.ttl = Number(ttl.value);
        await api("PUT", `/namespaces/${enc(id)}/entry`, body);
        show(`Added ${key.value}.`, "ok");
        go(`#/ns/${enc(id)}/key/${enc(key.value)}`);
      } catch (error) { failed(error); }
    },
  }, h("h2", {}, "Add a key"), key, value, metadata, fields, h("button", { type: "submit", id: "add-key" }, "Add key"));
}

function bulkForm(id) {
  const file = h("input", { id: "bulk-file", type: "file", accept: "application/json,.json" });
  const progress = h("progress", { id: "bulk-progress", max: "1", value: "0", hidden: true });
  const status = h("span", { id: "bulk-status" });
  return h("form", {
    id: "bulk-form",
    onsubmit: async (event) => {
      event.preventDefault();
      if (!file.files.length) return;
      let items;
      try {
        items = JSON.parse(await file.files[0].text());
        if (!Array.isArray(items)) throw new Error("the file must hold a JSON array");
      } catch (error) {
        show(`Cannot read the file: ${error.message}`, "error");
        return;
      }
      // Chunks of 100 items: each is one request, so the bar moves and a failure names its chunk.
      const chunk = 100;
      progress.max = items.length || 1;
      progress.value = 0;
      progress.hidden = false;
      for (let start = 0; start < items.length; start += chunk) {
        try {
          await api("POST", `/namespaces/${enc(id)}/bulk`, items.slice(start, start + chunk));
        } catch (error) {
          show(`Items ${start + 1}–${Math.min(start + chunk, items.length)} failed: ${error.message}; ${start} written.`, "error");
          return;
        }
        progress.value = Math.min(start + chunk, items.length);
        status.textContent = `${progress.value} / ${items.length}`;
      }
      status.textContent = `${items.length} / ${items.length}`;
      show(`Uploaded ${items.length} keys.`, "ok");
    },
  }, h("h2", {}, "Bulk upload"), file, h("button", { type: "submit", id: "bulk-upload" }, "Upload"), progress, status);
}

async function keyPage(id, key) {
  const entry = await api("GET", `/namespaces/${enc(id)}/entry${q({ key })}`);
  const value = entry.value;
  let shown;
  if (value.kind === "binary") {
    shown = h("div", {}, h("p", {}, `Binary, ${entry.size} bytes${value.truncated ? " (first 256 shown)" : ""}:`),
      h("pre", { id: "value", class: "hex" }, value.hex));
  } else {
    shown = h("pre", { id: "value" }, value.kind === "json" ? value.pretty : value.text);
  }
  const download = h("a", { id: "download", class: "button", href: `${API}/namespaces/${enc(id)}/download${q({ key })}` }, "Download");
  const editValue = h("textarea", { id: "edit-value", rows: "6", disabled: value.kind === "binary" || value.truncated });
  editValue.value = value.kind === "binary" ? "(binary: only metadata and expiry can be edited here)" : value.text;
  const editMetadata = h("textarea", { id: "edit-metadata", rows: "3" });
  editMetadata.value = entry.metadata === null || entry.metadata === undefined ? "" : JSON.stringify(entry.metadata, null, 2);
  const mode = h("select", { id: "edit-expiry" },
    h("option", { value: "keep" }, entry.expiration ? "keep the expiry" : "never expires"),
    h("option", { value: "none" }, "never expire"),
    h("option", { value: "ttl" }, "expire after a TTL"));
  const ttl = h("input", { id: "edit-ttl", type: "number", min: "60", placeholder: "seconds (≥ 60)" });
  const save = h("form", {
    id: "edit-form",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const body = { key, version: entry.version, metadata: parseMetadata(editMetadata.value) };
        if (editValue.disabled) body.keep_value = true;
        else body.value = editValue.value;
        if (body.keep_value) body.value = "";
        if (mode.value === "keep" && entry.expiration) body.expiration = entry.expiration;
        if (mode.value === "ttl" || (mode.value !== "none" && ttl.value)) body.ttl = Number(ttl.value);
        if (body.ttl !== undefined) delete body.expiration;
        await api("PUT", `/namespaces/${enc(id)}/entry`, body);
        await keyPage(id, key);
        show(`Saved ${key}.`, "ok");
      } catch (error) { failed(error); }
    },
  }, h("h2", {}, "Edit"), h("label", {}, "Value", editValue), h("label", {}, "Metadata (JSON)", editMetadata),
  h("label", {}, "Expiry ", mode, " TTL ", ttl), h("button", { type: "submit", id: "save" }, "Save"));
  const remove = h("button", {
    type: "button", id: "delete-key", class: "danger",
    onclick: async () => {
      try {
        await api("DELETE", `/namespaces/${enc(id)}/entry${q({ key, version: entry.version })}`);
        show(`Deleted ${key}.`, "ok");
        go(`#/ns/${enc(id)}`);
      } catch (error) { failed(error); }
    },
  }, "Delete key");
  view(h("h1", {}, h("a", { href: `#/ns/${enc(id)}` }, "Keys"), " / ", h("span", { id: "key-name" }, key)),
    h("dl", { class: "facts" },
      h("dt", {}, "Size"), h("dd", { id: "size" }, `${entry.size} bytes (${value.kind})`),
      h("dt", {}, "Expires"), h("dd", { id: "expiry" }, expiryText(entry.expiration, entry.now)),
      h("dt", {}, "Version"), h("dd", { id: "version", class: "mono" }, entry.version),
      h("dt", {}, "Metadata"), h("dd", {}, h("pre", { id: "metadata" },
        entry.metadata === null || entry.metadata === undefined ? "none" : JSON.stringify(entry.metadata, null, 2)))),
    shown, h("p", {}, download, " ", remove), save);
}


// ---- flags ----

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

async function flagsPage() {
  document.title = "Flags · KV console";
  const result = await api("GET", "/flags");
  if (!result.exists) {
    view(h("h1", {}, "Flags"), h("p", { class: "empty" },
      `There is no namespace “${result.namespace}”: the flags layer stores its flags there (kv serve --console-flags-namespace NAME to look elsewhere).`));
    return;
  }
  const cards = result.flags.map((flag) => flagCard(flag));
  view(h("h1", {}, "Flags ", h("span", { class: "muted" }, `in ${result.namespace}`)),
    result.errors.length ? h("pre", { class: "errors" }, result.errors.join("\n")) : null,
    cards.length ? cards : h("p", { class: "empty" }, "No flags."));
}

function flagCard(flag) {
  const d = flag.definition;
  const enabled = d.state === "ENABLED";
  const change = async (body, done) => {
    try {
      await api("PUT", `/flags/${enc(flag.key)}`, Object.assign({ version: flag.version }, body));
      await flagsPage();
      show(done, "ok");
    } catch (error) { failed(error); }
  };
  const toggle = h("button", {
    type: "button", class: enabled ? "toggle danger" : "toggle",
    onclick: () => change({ state: enabled ? "DISABLED" : "ENABLED" }, `${flag.key} ${enabled ? "disabled" : "enabled"}.`),
  }, enabled ? "Disable" : "Enable");
  const variants = Object.keys(d.variants);
  const select = h("select", { class: "default-variant" },
    variants.map((name) => h("option", { value: name, selected: name === d.defaultVariant }, name)));
  const setDefault = h("button", {
    type: "button", class: "set-default",
    onclick: () => change({ default_variant: select.value }, `${flag.key}: default variant ${select.value}.`),
  }, "Set default");
  const targetingKey = h("input", { class: "eval-key", placeholder: "targeting key (user id)" });
  const attributes = h("input", { class: "eval-attributes", placeholder: "attributes as JSON, e.g. {\"country\":\"NZ\"}" });
  const resultBox = h("output", { class: "eval-result" });
  const evaluate = h("form", {
    class: "evaluate",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const attrs = attributes.value.trim() ? JSON.parse(attributes.value) : {};
        const r = await api("POST", `/flags/${enc(flag.key)}/evaluate`, { targetingKey: targetingKey.value, attributes: attrs });
        resultBox.textContent = `value ${JSON.stringify(r.value)} · variant ${r.variant ?? "none"} · reason ${r.reason}` +
          (r.error_code ? ` · ${r.error_code}: ${r.error_message || ""}` : "");
      } catch (error) {
        resultBox.textContent = "";
        failed(error);
      }
    },
  }, h("strong", {}, "Evaluate for "), targetingKey, attributes, h("button", { type: "submit", class: "evaluate-button" }, "Evaluate"), resultBox);
  const rules = {};
  for (const field of ["targets", "rules", "targeting"]) if (d[field] !== undefined) rules[field] = d[field];
  return h("div", { class: "flag", "data-flag": flag.key },
    h("h2", {}, flag.key, " ", h("span", { class: `state state-${d.state}` }, d.state)),
    h("p", {}, toggle, " Default variant ", select, " ", setDefault),
    h("dl", { class: "facts" },
      h("dt", {}, "Variants"), h("dd", {}, h("pre", {}, pretty(d.variants))),
      h("dt", {}, "Targeting"), h("dd", {}, h("pre", {}, Object.keys(rules).length ? pretty(rules) : "none: everyone gets the default")),
      d.metadata ? [h("dt", {}, "Metadata"), h("dd", {}, h("pre", {}, pretty(d.metadata)))] : null),
    evaluate);
}

// ---- config ----

async function configPage(parts, params) {
  if (parts.length) return configDocument(parts.join("/"));
  document.title = "Config · KV console";
  const cursor = params.get("cursor") || "";
  const result = await api("GET", `/config${q({ cursor })}`);
  if (!result.exists) {
    view(h("h1", {}, "Config"), h("p", { class: "empty" },
      `There is no namespace “${result.namespace}”: the config layer stores its documents there (kv serve --console-config-namespace NAME to look elsewhere).`));
    return;
  }
  const rows = result.documents.map((doc) => h("tr", {},
    h("td", {}, h("a", { class: "config-link", href: `#/config/${enc(doc.key)}` }, doc.key)),
    h("td", { class: "mono" }, doc.metadata ? JSON.stringify(doc.metadata) : "")));
  view(h("h1", {}, "Config ", h("span", { class: "muted" }, `in ${result.namespace}`)),
    h("table", { id: "config-documents" }, h("thead", {}, h("tr", {}, h("th", {}, "Document"), h("th", {}, "Metadata"))), h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, "No documents."),
    result.cursor ? h("a", { class: "button", href: `#/config${q({ cursor: result.cursor })}` }, "Next page") : null);
}

// A line diff (longest common subsequence) of two texts: [kind, line] with kind " ", "-" or "+".
function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const table = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (table[i + 1][j] >= table[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

async function configDocument(key) {
  document.title = "Config · KV console";
  const doc = await api("GET", `/config/${enc(key)}`);
  const versions = doc.versions.map((v) => v.version);
  const option = (v, selected) => h("option", { value: String(v), selected }, `v${v}`);
  const from = h("select", { id: "diff-from" }, versions.map((v, i) => option(v, i === versions.length - 2)));
  const to = h("select", { id: "diff-to" }, versions.map((v, i) => option(v, i === versions.length - 1)));
  const diffBox = h("pre", { id: "diff", class: "diff" });
  const showDiff = async () => {
    try {
      const [a, b] = await Promise.all([from.value, to.value].map((v) => api("GET", `/config/${enc(key)}/versions/${v}`)));
      diffBox.replaceChildren(...diffLines(pretty(a.value), pretty(b.value)).map(([kind, line]) =>
        h("span", { class: kind === "+" ? "added" : kind === "-" ? "removed" : "same" }, `${kind} ${line}\n`)));
    } catch (error) { failed(error); }
  };
  const target = h("select", { id: "rollback-version" }, versions.map((v, i) => option(v, i === versions.length - 2)));
  const rollback = h("button", {
    type: "button", id: "rollback", class: "danger",
    onclick: async () => {
      try {
        const r = await api("POST", `/config/${enc(key)}/rollback`, { version: Number(target.value) });
        await configDocument(key);
        show(`Rolled back to v${target.value}: live is now v${r.version}.`, "ok");
      } catch (error) { failed(error); }
    },
  }, "Roll back");
  const rows = doc.versions.slice().reverse().map((v) => h("tr", { class: v.version === doc.version ? "live" : "" },
    h("td", {}, `v${v.version}${v.version === doc.version ? " (live)" : ""}`),
    h("td", {}, v.updated_at ? new Date(v.updated_at * 1000).toISOString() : ""),
    h("td", {}, v.note || "")));
  view(h("h1", {}, h("a", { href: "#/config" }, "Config"), " / ", h("span", { id: "config-key" }, key)),
    h("p", {}, "Live version: ", h("strong", { id: "live-version" }, doc.version === null ? "not written through the config API" : `v${doc.version}`)),
    h("pre", { id: "live" }, pretty(doc.live)),
    h("h2", {}, "History"),
    h("table", { id: "versions" }, h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Written"), h("th", {}, "Note"))), h("tbody", {}, rows)),
    versions.length > 1 ? [
      h("h2", {}, "Diff"),
      h("p", {}, from, " → ", to, " ", h("button", { type: "button", id: "diff-button", onclick: showDiff }, "Show diff")), diffBox,
      h("h2", {}, "Roll back"),
      h("p", {}, "Write ", target, " again as a new version: ", rollback),
    ] : h("p", { class: "empty" }, "Only one version is kept: nothing to diff or roll back to."));
}


// ---- sessions, rate limits, cache ----

function noNamespace(title, result, flag, what) {
  view(h("h1", {}, title), h("p", { class: "empty" },
    `There is no namespace “${result.namespace}”: the ${what} layer stores its data there (kv serve ${flag} NAME to look elsewhere).`));
}

async function sessionsPage() {
  document.title = "Sessions · KV console";
  const result = await api("GET", "/sessions");
  if (!result.exists) return noNamespace("Sessions", result, "--console-sessions-namespace", "session");
  const id = h("input", { id: "session-id", placeholder: "session ID (from the cookie)", autocomplete: "off", size: "50" });
  const out = h("div", { id: "session" });
  view(h("h1", {}, "Sessions ", h("span", { class: "muted" }, `in ${result.namespace}`)),
    h("p", {}, h("strong", { id: "session-count" }, result.more ? `${result.count}+` : String(result.count)), " sessions stored. IDs are never listed: the store holds only their hashes."),
    h("form", {
      id: "session-search",
      onsubmit: async (event) => {
        event.preventDefault();
        out.replaceChildren();
        try {
          const s = await api("POST", "/sessions/lookup", { id: id.value });
          out.replaceChildren(h("dl", { class: "facts" },
            h("dt", {}, "Expires"), h("dd", { id: "session-expiry" }, expiryText(s.expiration || s.expires_at, s.now)),
            h("dt", {}, "Data"), h("dd", {}, h("pre", { id: "session-data" }, pretty(s.data)))));
          show("", "");
        } catch (error) { failed(error); }
      },
    }, id, h("button", { type: "submit", id: "session-find" }, "Find")), out);
}

async function rateLimitsPage(parts, params) {
  document.title = "Rate limits · KV console";
  const quota = params.get("quota") || "";
  const rate = params.get("rate") || "";
  const limited = params.get("limited") === "true";
  const cursor = params.get("cursor") || "";
  const quotaInput = h("input", { id: "quota-name", value: quota, placeholder: "quota name (e.g. api)", required: true });
  const rateInput = h("input", { id: "quota-rate", value: rate, placeholder: "rate (e.g. 60/min)", required: true });
  const onlyLimited = h("input", { id: "only-limited", type: "checkbox", checked: limited });
  const form = h("form", {
    id: "quota-form",
    onsubmit: (event) => {
      event.preventDefault();
      go(`#/rate-limits${q({ quota: quotaInput.value, rate: rateInput.value, limited: onlyLimited.checked ? "true" : "" })}`);
    },
  }, quotaInput, rateInput, h("label", {}, onlyLimited, " only limited keys"), h("button", { type: "submit", id: "quota-show" }, "Show"));
  if (!quota || !rate) {
    view(h("h1", {}, "Rate limits"), h("p", {}, "Name a quota and its rate, as the layer was given them."), form);
    return;
  }
  const result = await api("GET", `/rate-limits${q({ quota, rate, limited: limited ? "true" : "", cursor })}`);
  if (!result.exists) return noNamespace("Rate limits", result, "--console-rate-limits-namespace", "rate-limit");
  const rows = result.keys.map((k) => h("tr", { class: k.limited ? "limited" : "" },
    h("td", { class: "mono" }, k.key),
    h("td", { class: "remaining" }, `${k.remaining} / ${k.limit}`),
    h("td", {}, k.limited ? "limited" : ""),
    h("td", {}, k.reset_secs > 0 ? `full again in ${duration(Math.ceil(k.reset_secs))}` : "full")));
  view(h("h1", {}, "Rate limits ", h("span", { class: "muted" }, `${result.quota}: ${result.rate}, in ${result.namespace}`)), form,
    h("table", { id: "rate-keys" }, h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Remaining"), h("th", {}, ""), h("th", {}, ""))), h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, "No keys on this page."),
    result.cursor ? h("a", { class: "button", href: `#/rate-limits${q({ quota, rate, limited: limited ? "true" : "", cursor: result.cursor })}` }, "Next page") : null);
}

async function cachePage(parts, params) {
  document.title = "Cache · KV console";
  const prefix = params.get("prefix") || "/";
  const cursor = params.get("cursor") || "";
  const result = await api("GET", `/cache${q({ prefix, cursor })}`);
  if (!result.exists) return noNamespace("Cache", result, "--console-cache-namespace", "cache");
  const input = h("input", { id: "cache-prefix", value: prefix, placeholder: "/api/" });
  const rows = result.entries.map((e) => h("tr", {},
    h("td", { class: "mono" }, e.url), h("td", {}, e.method + (e.variant ? " (variant)" : "")),
    h("td", {}, e.age_secs === null ? "" : duration(e.age_secs)), h("td", {}, e.bytes === null ? "" : `${e.bytes} B`),
    h("td", { class: "state" }, e.state || ""), h("td", {}, expiryText(e.expiration, result.now))));
  const purge = h("button", {
    type: "button", id: "cache-purge", class: "danger",
    onclick: async () => {
      try {
        const r = await api("POST", "/cache/purge", { prefix: input.value });
        await cachePage(parts, params);
        show(`Purged ${r.deleted} entries under ${r.prefix}.`, "ok");
      } catch (error) { failed(error); }
    },
  }, "Purge this prefix");
  view(h("h1", {}, "Cache ", h("span", { class: "muted" }, `in ${result.namespace}`)),
    h("form", { id: "cache-search", onsubmit: (event) => { event.preventDefault(); go(`#/cache${q({ prefix: input.value })}`); } },
      input, h("button", { type: "submit", id: "cache-show" }, "Show"), purge),
    h("table", { id: "cache-entries" }, h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", {}, "Method"), h("th", {}, "Age"), h("th", {}, "Size"), h("th", {}, "State"), h("th", {}, "Store expiry"))), h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "empty" }, "Nothing cached under this prefix."),
    result.cursor ? h("a", { class: "button", href: `#/cache${q({ prefix, cursor: result.cursor })}` }, "Next page") : null);
}

// ---- the router ----

const pages = { flags: flagsPage, config: configPage, sessions: sessionsPage, "rate-limits": rateLimitsPage, cache: cachePage };

async function render() {
  const nav = document.getElementById("nav");
  const signin = document.getElementById("signin-view");
  try {
    if (!csrf) {
      const state = await session();
      if (!state.signed_in) {
        nav.hidden = true;
        signin.hidden = false;
        view();
        document.title = "Sign in · KV console";
        document.getElementById("token").focus();
        return;
      }
    }
    nav.hidden = false;
    signin.hidden = true;
    const { parts, params } = route();
    if (parts[0] === "ns" && parts[2] === "key" && parts.length >= 4) {
      document.title = "Key · KV console";
      await keyPage(parts[1], parts.slice(3).join("/"));
    } else if (parts[0] === "ns" && parts[1]) {
      document.title = "Keys · KV console";
      await keysPage(parts[1], params);
    } else if (pages[parts[0]]) {
      await pages[parts[0]](parts.slice(1), params);
    } else {
      document.title = "Namespaces · KV console";
      await namespacesPage();
    }
  } catch (error) {
    failed(error);
  }
}

window.addEventListener("hashchange", () => {
  if (!keepMessage) show("", "");
  keepMessage = false;
  render();
});
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signin").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  render();
});
