// polymodal web page, videos: a result plays from its matching moment; an item page shows the video and its
// timeline (each shot's thumbnail, what it shows, what is said, heard and written in it). Loaded before
// app.js, whose helpers (h, clock, pct, playFrom) these functions use when they are called.
"use strict";

// A result card's media: the matching shot's thumbnail as the poster of a player that starts at the moment.
function videoCard(hit, body) {
  const start = hit.start ?? 0;
  const video = h("video", { controls: true, preload: "none", playsinline: true, poster: hit.thumbnail,
    src: `${hit.media}#t=${start}`, "aria-label": `Play ${hit.name} from ${clock(start)}` });
  if (hit.start !== null && hit.start !== undefined) {
    body.insertBefore(h("button", { type: "button", class: "time", title: "Play from the matching moment", "data-start": start,
      onclick: () => playFrom(video, start) }, `▶ ${clock(start)}${hit.end ? `–${clock(hit.end)}` : ""}`), body.children[2]);
  }
  const box = h("div", { class: "video-thumb" }, video);
  unplayable(video, box, hit.thumbnail);
  return box;
}

// Browsers play MP4 (H.264), WebM and Ogg, not AVI or MPEG-4 Part 2: show the shot's picture and say so.
function unplayable(video, box, poster) {
  video.addEventListener("error", () => {
    video.replaceWith(h("img", { src: poster, alt: "" }));
    box.append(h("p", { class: "unplayable", text: "This browser cannot play this video's format: open the file instead." }));
  }, { once: true });
}

// The item page's player; `#/item/ID?t=SECONDS` starts it there.
function renderVideo(panel, item) {
  const video = h("video", { id: "player", controls: true, preload: "metadata", playsinline: true, src: item.media,
    poster: `/api/items/${item.item}/thumbnail`, "aria-label": `Play ${item.name}` });
  const start = Number(parseHash().params.get("t"));
  if (start) playFrom(video, start);
  const box = h("div", { class: "video-box" }, video);
  unplayable(video, box, video.poster);
  panel.append(box);
  const notes = (item.meta.shots ? [`${item.meta.shots} shots`] : []).concat(item.meta.duration ? [`${clock(item.meta.duration)} long`] : []);
  if (notes.length) panel.append(h("p", { class: "muted", text: notes.join(" · ") }));
  return video;
}

// The shots in order, each with its evidence: a video's evidence carries its shot number in `page`.
function videoShots(item) {
  const shots = new Map();
  for (const e of item.evidence) {
    if (e.page === undefined || e.page === null) continue;
    if (!shots.has(e.page)) shots.set(e.page, { number: e.page, start: null, end: null, label: [], ocr: [], transcript: [], tag: [] });
    const shot = shots.get(e.page);
    if (e.kind === "label" && shot.start === null) { shot.start = e.start; shot.end = e.end; }
    if (shot[e.kind]) shot[e.kind].push(e);
  }
  return [...shots.values()].filter((s) => s.start !== null).sort((a, b) => a.start - b.start);
}

function renderTimeline(root, item, video) {
  const shots = videoShots(item);
  const list = h("ol", { class: "timeline" });
  const seek = (event, start) => {
    $$(".timeline .playing").forEach((el) => el.classList.remove("playing"));
    event.currentTarget.closest("li").classList.add("playing");
    if (video) playFrom(video, start);
  };
  for (const shot of shots) {
    const seen = shot.label.slice(0, 2).map((e) => `${e.text} (${pct(e.score)})`).join(", ");
    const heard = [...new Set(shot.tag.map((e) => e.text))].slice(0, 4).join(", ");
    const details = h("div", { class: "shot-text" },
      h("button", { type: "button", class: "time", title: "Play this shot", onclick: (e) => seek(e, shot.start) }, `▶ ${clock(shot.start)}–${clock(shot.end)}`),
      seen ? h("p", {}, h("strong", { text: "Seen: " }), seen) : null,
      shot.ocr.length ? h("p", {}, h("strong", { text: "On screen: " }), `“${shot.ocr.slice(0, 12).map((e) => e.text).join(" / ")}”`) : null,
      ...shot.transcript.map((seg) => h("p", { class: "said" }, h("button", { type: "button", class: "link", title: "Play from here",
        onclick: (e) => seek(e, seg.start) }, clock(seg.start)), ` “${seg.text}”`)),
      heard ? h("p", { class: "muted" }, h("strong", { text: "Heard: " }), heard) : null);
    list.append(h("li", { "data-start": shot.start },
      h("img", { src: `/api/items/${item.item}/thumbnail?shot=${shot.number}`, alt: `Shot at ${clock(shot.start)}`, loading: "lazy" }), details));
  }
  const language = item.meta.language ? ` · speech in ${item.meta.language}` : "";
  root.append(h("section", { class: "panel" }, h("h2", { text: `Timeline (${shots.length} shots${language})` }),
    shots.length ? list : h("p", { class: "muted", text: "No shots were read from this video." })));
}
