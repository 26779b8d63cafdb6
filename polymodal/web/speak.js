// polymodal web page: answers spoken aloud (POST /api/speak), and a spoken question answered aloud
// (POST /api/assistant with `voice` and `speak=true`). Separate from app.js: it hears of finished answers
// through the "polymodal:answer" event ({text, element}), and also notices answers shown in the Ask view.
"use strict";

(() => {
  const AUTO_KEY = "polymodal.readAnswersAloud";
  const MAX_TEXT = 20000;
  const handled = new WeakSet(); // answer elements that have their play button
  const autoPlayed = new WeakSet(); // ... and were read aloud automatically
  let current = null; // { audio, url, button }

  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  };
  const autoRead = () => localStorage.getItem(AUTO_KEY) === "1";

  function stop() {
    if (!current) return;
    current.audio.pause();
    URL.revokeObjectURL(current.url);
    setState(current.button, "idle");
    current = null;
  }

  function setState(button, state) {
    if (!button) return;
    button.dataset.state = state;
    button.setAttribute("aria-pressed", String(state === "playing"));
    button.textContent = { idle: "▶ Listen", loading: "… Speaking", playing: "■ Stop" }[state] || "▶ Listen";
  }

  function showError(button, message) {
    const note = el("p", { class: "error speak-error", role: "alert", text: message });
    button.closest(".speak-bar")?.append(note);
  }

  async function play(text, button) {
    if (current && current.button === button) { stop(); return; }
    stop();
    text = (text || "").trim().slice(0, MAX_TEXT);
    if (!text) return;
    setState(button, "loading");
    button.closest(".speak-bar")?.querySelector(".speak-error")?.remove();
    let response;
    try {
      response = await fetch("/api/speak", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }),
      });
    } catch {
      setState(button, "idle");
      showError(button, "The service cannot be reached to speak the answer.");
      return;
    }
    if (!response.ok) {
      let message = `Speaking failed: the service answered ${response.status}.`;
      try { const data = await response.json(); if (data.error) message = `Speaking failed: ${data.error}`; } catch { /* not JSON */ }
      setState(button, "idle");
      showError(button, message);
      return;
    }
    await playBlob(await response.blob(), button);
  }

  async function playBlob(blob, button) {
    stop();
    const url = URL.createObjectURL(blob);
    const bar = button.closest(".speak-bar");
    let audio = bar.querySelector("audio");
    if (!audio) { audio = el("audio", { controls: "", class: "speak-audio", preload: "auto" }); bar.append(audio); }
    audio.src = url;
    current = { audio, url, button };
    audio.addEventListener("ended", () => { if (current && current.audio === audio) { setState(button, "idle"); current = null; } }, { once: true });
    setState(button, "playing");
    try {
      await audio.play();
    } catch (err) { // autoplay refused: the controls stay for the user to press play
      setState(button, "idle");
      current = null;
      if (err && err.name !== "NotAllowedError") showError(button, `The answer could not be played: ${err.message}`);
    }
  }

  function attach(element, text) {
    if (!element || handled.has(element)) return null;
    handled.add(element);
    const button = el("button", { type: "button", class: "secondary speak-play", "aria-label": "Listen to the answer" });
    setState(button, "idle");
    button.addEventListener("click", () => play(text(), button));
    element.after(el("div", { class: "row speak-bar" }, button));
    return button;
  }

  function answered(element, text) {
    const button = attach(element, text) || element.nextElementSibling?.querySelector(".speak-play");
    if (button && autoRead() && !autoPlayed.has(element)) {
      autoPlayed.add(element);
      play(text(), button);
    }
  }

  // A finished answer, told by app.js.
  document.addEventListener("polymodal:answer", (event) => {
    const { text, element } = event.detail || {};
    if (element) answered(element, () => text || element.textContent);
  });

  // Answers shown in the Ask view: a play button at once; read aloud (when asked) once the work is done.
  function watchAsk() {
    const result = document.getElementById("ask-result");
    if (!result) return;
    new MutationObserver(() => {
      for (const answer of result.querySelectorAll(".answer-text:not(.draft)")) {
        attach(answer, () => answer.textContent);
        if (autoRead() && !autoPlayed.has(answer)) whenSettled(answer);
      }
    }).observe(result, { childList: true, subtree: true });
  }

  function whenSettled(answer) {
    if (answer.dataset.speakWaiting) return;
    answer.dataset.speakWaiting = "1";
    let last = null;
    const check = () => {
      const panel = answer.closest(".panel") || answer.parentElement;
      const busy = panel?.querySelector(".spinner, .current");
      if (!answer.isConnected) return;
      if (!busy && answer.textContent === last) { answered(answer, () => answer.textContent); return; }
      last = answer.textContent;
      setTimeout(check, 400);
    };
    setTimeout(check, 400);
  }

  // The "read answers aloud" option, and "Ask aloud": a spoken question, answered in words and speech.
  function controls() {
    const form = document.getElementById("ask-form");
    const row = form?.querySelector(".row");
    if (!row) return;
    const box = el("input", { type: "checkbox", id: "speak-auto" });
    box.checked = autoRead();
    box.addEventListener("change", () => localStorage.setItem(AUTO_KEY, box.checked ? "1" : "0"));
    const mic = el("button", { type: "button", id: "ask-voice", class: "secondary", "aria-pressed": "false",
      title: "Ask a question out loud; the answer is read back" }, micIcon(), " Ask aloud");
    mic.addEventListener("click", () => record(mic));
    row.append(el("label", { class: "check" }, box, " Read answers aloud"), mic);
  }

  function micIcon() { // the microphone of the search bar (no emoji: not every system has a font for it)
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const rect = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x: 9, y: 3, width: 6, height: 11, rx: 3 })) rect.setAttribute(k, v);
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M5 11a7 7 0 0 0 14 0M12 18v3");
    svg.append(rect, path);
    return svg;
  }

  let recording = null;
  async function record(mic) {
    if (recording) { recording.stop(); return; }
    if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
      spokenResult(null, "This browser cannot record audio here (it needs https or localhost).");
      return;
    }
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (err) {
      spokenResult(null, `The microphone is not available: ${err.message}`);
      return;
    }
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    recording = recorder;
    mic.setAttribute("aria-pressed", "true");
    mic.textContent = "■ Stop and ask";
    recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((track) => track.stop());
      recording = null;
      mic.setAttribute("aria-pressed", "false");
      mic.replaceChildren(micIcon(), " Ask aloud");
      const type = recorder.mimeType || "audio/webm";
      const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
      askAloud(new File(chunks, `question.${ext}`, { type }));
    });
    recorder.start();
  }

  async function askAloud(file) {
    const panel = spokenResult(null, null);
    panel.append(el("p", { class: "note", text: "Listening to the question and answering…" }));
    const form = new FormData();
    form.append("voice", file, file.name);
    form.append("speak", "true");
    let data;
    try {
      const response = await fetch("/api/assistant", { method: "POST", body: form, credentials: "same-origin" });
      data = await response.json();
      if (!response.ok) throw new Error(data.error || `the service answered ${response.status}`);
    } catch (err) {
      panel.replaceChildren(el("p", { class: "error", text: `The spoken question could not be answered: ${err.message}` }));
      return;
    }
    const heard = data.question || data.request || "";
    const answer = el("p", { class: "answer-text spoken-answer", text: data.answer || "" });
    handled.add(answer); // its button is made here, with the speech that came with the answer
    autoPlayed.add(answer);
    panel.replaceChildren(el("p", { class: "note", text: `Heard: “${heard}”` }), answer,
      el("p", { class: "note", text: `${data.route}, by ${data.by}` }));
    const button = el("button", { type: "button", class: "secondary speak-play", "aria-label": "Listen to the answer" });
    setState(button, "idle");
    answer.after(el("div", { class: "row speak-bar" }, button));
    const speech = data.speech && data.speech.url ? dataUrlBlob(data.speech.url) : null;
    button.addEventListener("click", () => (speech && !(current && current.button === button) ? playBlob(speech, button) : play(answer.textContent, button)));
    if (data.speech_error) showError(button, `The answer could not be spoken: ${data.speech_error}`);
    else if (speech) playBlob(speech, button);
  }

  // A data: URL as a Blob (the page's CSP lets fetch() reach only the service itself).
  function dataUrlBlob(url) {
    const [head, data] = url.split(",", 2);
    const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
    return new Blob([bytes], { type: head.slice(5).split(";")[0] || "audio/wav" });
  }

  function spokenResult(_, error) {
    const out = document.getElementById("ask-result");
    const panel = el("section", { class: "panel spoken" });
    out.replaceChildren(panel);
    if (error) panel.append(el("p", { class: "error", text: error }));
    return panel;
  }

  controls();
  watchAsk();
})();
