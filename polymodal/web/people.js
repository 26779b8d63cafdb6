// polymodal web page, people: a People view (one card per person: face, name to edit, photos; merge and forget)
// at #/people, and face boxes with names on an image's item page. Loaded after app.js, whose helpers (h, $, $$,
// api, clear, showError) it uses; it adds its nav link and view itself, so app.js needs no change.
"use strict";

(function people() {
  const view = h("section", { id: "view-people", class: "view", hidden: true, "aria-labelledby": "people-title" });
  const nav = h("a", { href: "#/people", "data-nav": "people" }, "People");
  $("header.top nav")?.append(nav);
  $("#main")?.append(view);
  const picked = new Set();

  function isPeople() { return location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] === "people"; }

  function showPeople() {
    for (const other of $$("main > .view")) if ((other !== view) !== other.hidden) other.hidden = other !== view;
    for (const link of $$("nav a")) if (link !== nav) link.removeAttribute("aria-current");
    nav.setAttribute("aria-current", "page");
    document.title = "People · polymodal";
  }

  async function route() {
    if (!isPeople()) { view.hidden = true; nav.removeAttribute("aria-current"); return; }
    showPeople();
    await render();
  }
  // app.js's router runs too (it knows no People view) and may show another view after this one: undo that.
  new MutationObserver(() => { if (isPeople() && $$("main > .view").some((v) => v !== view && !v.hidden)) showPeople(); })
    .observe($("#main") || document.body, { attributes: true, attributeFilter: ["hidden"], subtree: true });
  new MutationObserver(() => { if (isPeople() && !nav.hasAttribute("aria-current")) showPeople(); })
    .observe(nav, { attributes: true, attributeFilter: ["aria-current"] });

  async function render() {
    clear(view).append(h("h1", { id: "people-title" }, "People"));
    let data;
    try {
      data = await api("/api/people");
    } catch (err) {
      view.append(h("p", { class: "error", text: err.message }));
      return;
    }
    if (!data.enabled) {
      view.append(h("p", { class: "lede", text: "Faces are off for this collection (polymodal people on, then index)." }));
      return;
    }
    if (!data.people.length) {
      view.append(h("p", { class: "lede", text: "No faces yet: add photos or videos with people in them." }));
      return;
    }
    picked.clear();
    const merge = h("button", { type: "button", class: "secondary", disabled: true, onclick: mergePicked },
      "Merge selected");
    view.append(
      h("p", { class: "lede" }, "Faces grouped into people. Name someone to find them by name: \u201cAnna at the beach\u201d."),
      h("div", { class: "row" }, merge),
      h("div", { class: "people-grid" }, data.people.map((p) => card(p, merge))));
  }

  function card(person, merge) {
    const label = person.name || `Person ${person.person}`;
    const name = h("input", { type: "text", value: person.name || "", placeholder: "Add a name", maxlength: 100,
      "aria-label": `Name of ${label}` });
    name.addEventListener("change", () => rename(person.person, name.value));
    const pick = h("input", { type: "checkbox", "aria-label": `Select ${label} to merge` });
    pick.addEventListener("change", () => {
      if (pick.checked) picked.add(person.person); else picked.delete(person.person);
      merge.disabled = picked.size < 2;
    });
    const photos = person.items.slice(0, 8).map((id) => {
      const img = h("img", { src: `/api/items/${id}/thumbnail`, alt: `item ${id}`, loading: "lazy", width: 40, height: 40 });
      img.addEventListener("error", () => img.replaceWith(`#${id}`), { once: true });
      return h("a", { href: `#/item/${id}`, title: `Open item ${id}` }, img);
    });
    if (person.items.length > 8) photos.push(h("span", { class: "muted", text: `+${person.items.length - 8}` }));
    return h("article", { class: "person-card" },
      h("img", { src: person.face_url, alt: `Face of ${label}`, loading: "lazy", width: 120, height: 120 }),
      name,
      h("p", { class: "muted", text: `${person.faces} face${person.faces === 1 ? "" : "s"} in ${person.items.length} item${person.items.length === 1 ? "" : "s"}` }),
      h("p", { class: "person-items" }, photos),
      h("div", { class: "row" },
        h("label", { class: "check" }, pick, " select"),
        h("button", { type: "button", class: "secondary", onclick: () => forget(person.person, label) }, "Forget")));
  }

  async function rename(id, name) {
    try { await api(`/api/people/${id}/name`, { method: "POST", json: { name } }); await render(); }
    catch (err) { showError(err); }
  }

  async function mergePicked() {
    const [into, ...others] = [...picked];
    try { await api(`/api/people/${into}/merge`, { method: "POST", json: { others } }); await render(); }
    catch (err) { showError(err); }
  }

  async function forget(id, label) {
    if (!confirm(`Forget ${label}? Their face data is deleted from the collection (the photos stay).`)) return;
    try { await api(`/api/people/${id}`, { method: "DELETE" }); await render(); }
    catch (err) { showError(err); }
  }

  // Face boxes on an image's item page, with the person's name (or number).
  async function boxes(img, itemId) {
    let faces;
    try { faces = (await api(`/api/items/${itemId}/faces`)).faces; } catch { return; }
    if (!faces.length || !img.isConnected) return;
    const frame = h("div", { class: "face-frame" });
    img.replaceWith(frame);
    frame.append(img);
    const place = () => {
      for (const old of $$(".face-box", frame)) old.remove();
      const w = img.naturalWidth, hgt = img.naturalHeight;
      if (!w || !hgt) return;
      for (const f of faces.filter((x) => x.shot === undefined)) {
        const [x0, y0, x1, y1] = f.box;
        frame.append(h("a", { class: "face-box", href: f.person ? "#/people" : null,
          title: f.name || (f.person ? `Person ${f.person}` : "a face"),
          style: { left: `${(100 * x0) / w}%`, top: `${(100 * y0) / hgt}%`, width: `${(100 * (x1 - x0)) / w}%`,
            height: `${(100 * (y1 - y0)) / hgt}%` } },
          h("span", { text: f.name || (f.person ? `Person ${f.person}` : "") })));
      }
    };
    if (img.complete) place(); else img.addEventListener("load", place, { once: true });
  }

  new MutationObserver(() => {
    const match = location.hash.match(/^#\/item\/(\d+)/);
    const img = $("#view-item .media-view img");
    if (match && img && !img.dataset.faces) { img.dataset.faces = "1"; boxes(img, match[1]); }
  }).observe($("#view-item") || document.body, { childList: true, subtree: true });

  window.addEventListener("hashchange", route);
  route();
})();
