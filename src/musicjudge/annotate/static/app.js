// musicjudge annotation client: plain JS, no build step.
// The server decides which pair comes next and in which order the clips are shown; the page
// only reports choices in displayed terms (first/second clip) and which clips were played.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { annotator: null, token: null, current: null, played: { first: false, second: false, ref: false }, shownAt: 0 };

async function api(path, options = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, options.headers || {});
  if (state.token) headers["X-Study-Token"] = state.token;
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function showProgress(progress) {
  if (progress) $("progress").textContent = `${progress.done} / ${progress.total} judged`;
}

async function loadStudy() {
  const info = await api("/api/study");
  $("study-title").textContent = `— ${info.title}`;
  $("token-row").hidden = !info.token_required;
  const saved = window.localStorage.getItem("mj-annotator");
  if (saved) $("annotator").value = saved;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const annotator = $("annotator").value.trim();
  const token = $("token").value || null;
  try {
    const result = await api("/api/login", { method: "POST", body: JSON.stringify({ annotator, token }) });
    state.annotator = result.annotator;
    state.token = token;
    window.localStorage.setItem("mj-annotator", annotator);
    showProgress(result.progress);
    $("login").hidden = true;
    await nextPair();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
}

function setAudio(slot, url) {
  const audio = $(`audio-${slot}`);
  audio.pause();
  if (url) { audio.src = url; } else { audio.removeAttribute("src"); }
  audio.load();
}

async function nextPair() {
  const data = await api(`/api/next?annotator=${encodeURIComponent(state.annotator)}`);
  showProgress(data.progress);
  if (data.done) {
    $("task").hidden = true;
    $("done").hidden = false;
    return;
  }
  state.current = data;
  state.played = { first: false, second: false, ref: false };
  state.shownAt = performance.now();
  $("ins-text").textContent = data.instruction.text || "(none)";
  $("ins-lyrics").textContent = data.instruction.lyrics || "";
  $("ins-lyrics-row").hidden = !data.instruction.lyrics;
  $("ref-row").hidden = !data.audio.ref;
  setAudio("ref", data.audio.ref);
  setAudio("first", data.audio.first);
  setAudio("second", data.audio.second);
  $("fs-alignment").hidden = !data.ask_alignment;
  $("fs-alignment").disabled = !data.ask_alignment;
  $("vote-form").reset();
  document.querySelectorAll("button.play").forEach((b) => b.classList.remove("played"));
  $("vote-error").textContent = "";
  $("task").hidden = false;
  $("task").dataset.pairId = data.pair_id;  // lets scripts/tests know which pair is on screen
  updateSubmit();
}

function updateSubmit() {
  const ready = state.played.first && state.played.second;
  $("submit").disabled = !ready;
  $("play-hint").hidden = ready;
}

function markPlayed(slot) {
  state.played[slot] = true;
  const button = document.querySelector(`button.play[data-target="${slot}"]`);
  if (button) button.classList.add("played");
  updateSubmit();
}

function play(slot) {
  ["ref", "first", "second"].forEach((other) => { if (other !== slot) $(`audio-${other}`).pause(); });
  const audio = $(`audio-${slot}`);
  audio.currentTime = 0;
  const attempt = audio.play();
  // AbortError = the user started another clip before this one began; not a failure.
  if (attempt && attempt.catch) attempt.catch((e) => { if (e.name !== "AbortError") $("vote-error").textContent = `cannot play audio: ${e.message}`; });
}

async function submitVote(event) {
  event.preventDefault();
  const form = new FormData($("vote-form"));
  const body = {
    annotator: state.annotator,
    pair_id: state.current.pair_id,
    musicality: form.get("musicality"),
    confidence_musicality: Number(form.get("confidence_musicality")),
    reason: (form.get("reason") || "").trim() || null,
    played: state.played,
    elapsed_s: Math.round((performance.now() - state.shownAt) / 10) / 100,
  };
  if (state.current.ask_alignment) {
    body.alignment = form.get("alignment");
    body.confidence_alignment = Number(form.get("confidence_alignment"));
  }
  $("submit").disabled = true;
  try {
    const result = await api("/api/vote", { method: "POST", body: JSON.stringify(body) });
    showProgress(result.progress);
    await nextPair();
  } catch (e) {
    $("vote-error").textContent = e.message;
    // The server restarted and forgot this assignment: fetch the pair again (same pair, new order).
    if (e.message.includes("reload the page")) { await nextPair(); $("vote-error").textContent = "the server restarted; please judge this pair again"; return; }
    updateSubmit();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("vote-form").addEventListener("submit", submitVote);
  document.querySelectorAll("button.play").forEach((b) => b.addEventListener("click", () => play(b.dataset.target)));
  ["ref", "first", "second"].forEach((slot) => $(`audio-${slot}`).addEventListener("playing", () => markPlayed(slot)));
  loadStudy().catch((e) => { $("login-error").textContent = `cannot reach the study server: ${e.message}`; });
});
