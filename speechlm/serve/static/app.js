// speechlm serve: the page. Talks to the JSON API only (see the README); no dependencies.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { prompt: null, promptName: "", voice: null, voiceName: "", info: null, busy: null };

// ------------------------------------------------------------------ messages
function showError(msg) {
  const el = $("#error");
  el.textContent = msg;
  el.hidden = !msg;
}

// ------------------------------------------------------------------ API
async function refusal(res) {
  try {
    const e = await res.json();
    return new Error(e.error || res.statusText);
  } catch (_) {
    return new Error(`${res.status} ${res.statusText}`);
  }
}

// POST a form with ?stream=1 and follow its NDJSON events; resolves with the result.
async function runJob(path, form, onEvent, signal) {
  const res = await fetch(path + "?stream=1", { method: "POST", body: form, signal });
  if (!res.ok) throw await refusal(res);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const ev = JSON.parse(line);
      if (ev.event === "result") return ev.result;
      if (ev.event === "error") throw new Error(ev.error);
      onEvent(ev);
    }
    if (done) throw new Error("the server closed the connection before the result");
  }
}

// ------------------------------------------------------------------ drawing
const SPEC_COLORS = (() => {  // a magma-like ramp, 256 entries of [r, g, b]
  const stops = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                 [245, 125, 21], [250, 193, 39], [252, 253, 191]];
  const out = [];
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k, a = stops[k], b = stops[k + 1];
    out.push([0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)));
  }
  return out;
})();

function unitColor(id) { return `hsl(${(id * 137.508) % 360}, 62%, 58%)`; }

function specImage(spec) {
  const raw = atob(spec.data);
  const w = spec.frames, h = spec.n_mels;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let x = 0; x < w; x++) {
    for (let m = 0; m < h; m++) {
      const v = raw.charCodeAt(x * h + m), col = SPEC_COLORS[v];
      const p = ((h - 1 - m) * w + x) * 4;  // low frequencies at the bottom
      img.data[p] = col[0]; img.data[p + 1] = col[1]; img.data[p + 2] = col[2]; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

// view: {envelope, spectrogram}; segments: [{ids, durations, frame_rate}]; boundary: seconds or null
function drawClip(canvas, clip, playhead) {
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth, H = 200;
  if (canvas.width !== Math.round(W * dpr)) {
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.height = H + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const wave = { y: 0, h: 58 }, spec = { y: 60, h: 112 }, units = { y: 174, h: 26 };
  const dur = clip.seconds, xOf = (t) => (t / dur) * W;
  // waveform
  const env = clip.view.envelope, n = env.min.length;
  ctx.fillStyle = "#8b86ff";
  const mid = wave.y + wave.h / 2;
  for (let i = 0; i < n; i++) {
    const x = (i / n) * W, w = Math.max(1, W / n);
    const top = mid - env.max[i] * (wave.h / 2 - 2), bot = mid - env.min[i] * (wave.h / 2 - 2);
    ctx.fillRect(x, top, w, Math.max(1, bot - top));
  }
  // spectrogram
  if (!clip._spec) clip._spec = specImage(clip.view.spectrogram);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(clip._spec, 0, spec.y, W, spec.h);
  // units
  ctx.fillStyle = "#151a2d";
  ctx.fillRect(0, units.y, W, units.h);
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  let t = 0;
  for (const seg of clip.segments) {
    for (let i = 0; i < seg.ids.length; i++) {
      const d = seg.durations ? seg.durations[i] / seg.frame_rate : 1 / seg.frame_rate;
      const x0 = xOf(t), x1 = xOf(t + d);
      ctx.fillStyle = unitColor(seg.ids[i]);
      ctx.fillRect(x0, units.y + 2, Math.max(1, x1 - x0 - 0.5), units.h - 4);
      if (x1 - x0 >= 15) {
        ctx.fillStyle = "#0e1222";
        ctx.fillText(String(seg.ids[i]), (x0 + x1) / 2, units.y + units.h / 2);
      }
      t += d;
    }
  }
  // the prompt, shaded, and the boundary
  if (clip.boundary != null && clip.boundary > 0) {
    const bx = xOf(clip.boundary);
    ctx.fillStyle = "rgba(255,255,255,0.07)";
    ctx.fillRect(0, 0, bx, H);
    ctx.strokeStyle = "#ff4d4d"; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(bx, 0); ctx.lineTo(bx, H); ctx.stroke(); ctx.setLineDash([]);
    ctx.font = "600 11px system-ui, sans-serif"; ctx.textBaseline = "top";
    ctx.fillStyle = "#ffb3b0"; ctx.textAlign = "right"; ctx.fillText("prompt", bx - 6, 4);
    ctx.fillStyle = "#ff8f8a"; ctx.textAlign = "left"; ctx.fillText("continuation →", bx + 6, 4);
  }
  if (playhead != null && playhead > 0) {
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5;
    const px = xOf(playhead);
    ctx.beginPath(); ctx.moveTo(px, 0); ctx.lineTo(px, H); ctx.stroke();
  }
}

function fmtSim(s) {
  if (s == null) return "–";
  const w = Math.max(0, Math.min(1, s)) * 100;
  return `<span class="meter"><i style="width:${w}%"></i></span>${s.toFixed(3)}`;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}

// A card with the picture, a player, downloads and the judges' verdict.
function clipElement(clip) {
  const el = document.createElement("div");
  el.className = "clip";
  const dl = (url, name, label) => url
    ? `<a href="${url}?download=1" download="${esc(name)}">${label}</a>` : "";
  const judge = clip.judge ? `<div class="judge">
      <span class="transcript"><span class="label">Whisper:</span>“${esc(clip.judge.transcript || "")}”</span>
      <span><span class="label">speaker similarity${clip.simLabel ? " to " + esc(clip.simLabel) : ""}:</span>${fmtSim(clip.judge.speaker_similarity)}</span>
      ${clip.judge.note ? `<span class="label">${esc(clip.judge.note)}</span>` : ""}</div>` : "";
  el.innerHTML = `<div class="clip-head"><span class="clip-title">${esc(clip.title)}</span>
      <span class="clip-meta">${esc(clip.meta || "")}</span></div>
    <canvas></canvas>
    <div class="clip-foot"><audio controls preload="metadata" src="${clip.src}"></audio>
      ${dl(clip.wavUrl, clip.fileStem + ".wav", "wav ↓")}
      ${dl(clip.unitsUrl, clip.fileStem + ".units.jsonl", "units ↓")}</div>${judge}`;
  const canvas = el.querySelector("canvas"), audio = el.querySelector("audio");
  let raf = 0;
  const redraw = () => drawClip(canvas, clip, audio.currentTime);
  const tick = () => { redraw(); if (!audio.paused) raf = requestAnimationFrame(tick); };
  audio.addEventListener("play", () => { cancelAnimationFrame(raf); tick(); });
  audio.addEventListener("seeked", redraw);
  audio.addEventListener("pause", redraw);
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    audio.currentTime = ((e.clientX - r.left) / r.width) * clip.seconds;
    redraw();
  });
  new ResizeObserver(redraw).observe(canvas);
  requestAnimationFrame(redraw);
  return el;
}

function addResult(clipEl) {
  const card = document.createElement("div");
  card.className = "card result";
  const close = document.createElement("button");
  close.className = "close"; close.title = "remove"; close.textContent = "×";
  close.onclick = () => card.remove();
  card.append(close, clipEl);
  $("#results").prepend(card);
}

// ------------------------------------------------------------------ recording
// MediaRecorder gives webm/ogg; the browser decodes it and we send a 16-bit wav.
function encodeWav(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

function recorder(button, onDone) {
  let rec = null, chunks = [];
  button.addEventListener("click", async () => {
    if (rec) { rec.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      rec = new MediaRecorder(stream); chunks = [];
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = async () => {
        stream.getTracks().forEach((t) => t.stop());
        button.classList.remove("recording");
        button.innerHTML = button.dataset.label;
        rec = null;
        try {
          const ctx = new AudioContext();
          const audio = await ctx.decodeAudioData(await new Blob(chunks).arrayBuffer());
          const ch = audio.numberOfChannels, mono = new Float32Array(audio.length);
          for (let c = 0; c < ch; c++) {
            const d = audio.getChannelData(c);
            for (let i = 0; i < d.length; i++) mono[i] += d[i] / ch;
          }
          ctx.close();
          onDone(encodeWav(mono, audio.sampleRate), "recording.wav");
        } catch (err) { showError("could not decode the recording: " + err.message); }
      };
      button.dataset.label = button.innerHTML;
      button.classList.add("recording");
      button.innerHTML = '<span class="dot"></span> Stop';
      rec.start();
    } catch (err) {
      showError("no microphone: " + err.message + " (upload a file instead)");
    }
  });
}

// ------------------------------------------------------------------ operations
function progress(show, ev) {
  const p = $("#progress");
  p.hidden = !show;
  if (!show) return;
  if (!ev) { p.querySelector(".fill").style.width = "0"; p.querySelector(".stage").textContent = "sending"; return; }
  if (ev.event === "queued") {
    p.querySelector(".stage").textContent = ev.position ? `waiting: ${ev.position} job(s) ahead` : "waiting";
  } else if (ev.event === "progress") {
    p.querySelector(".fill").style.width = `${Math.round((100 * ev.done) / Math.max(1, ev.total))}%`;
    p.querySelector(".stage").textContent = ev.stage;
  }
}

async function job(path, form) {
  if (state.busy) state.busy.abort();
  const ctl = new AbortController();
  state.busy = ctl;
  showError("");
  progress(true, null);
  setButtons();
  try {
    return await runJob(path, form, (ev) => progress(true, ev), ctl.signal);
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
    return null;
  } finally {
    if (state.busy === ctl) state.busy = null;
    progress(false);
    setButtons();
  }
}

function setButtons() {
  const busy = !!state.busy;
  $("#continue").disabled = !state.prompt || busy;
  $("#resynth").disabled = !state.prompt || busy;
  $("#convert").disabled = !state.prompt || !state.voice || busy;
}

async function setAudio(which, blob, name) {
  state[which] = blob; state[which + "Name"] = name;
  setButtons();
  const form = new FormData();
  form.append("audio", blob, name);
  const res = await job("/api/analyze", form);
  const box = $(`#${which}-clip`);
  if (!res) { state[which] = null; setButtons(); return; }
  $(`#${which}-empty`).hidden = true;
  box.replaceChildren(clipElement({
    title: name, meta: `${res.seconds.toFixed(2)} s · ${res.units.ids.length} units (deduplicated) · ${res.units.unit_space}`,
    seconds: res.seconds, view: res.view, segments: [res.units], boundary: null,
    src: URL.createObjectURL(blob), unitsUrl: res.units_url, fileStem: name.replace(/\.[^.]+$/, ""),
  }));
}

async function doContinue() {
  const form = new FormData();
  form.append("audio", state.prompt, state.promptName);
  const c = new FormData($("#controls"));
  for (const [k, v] of c.entries()) if (k !== "judge" && String(v).trim() !== "") form.append(k, v);
  form.append("judge", $("#controls [name=judge]").checked ? "1" : "0");
  const res = await job("/api/continue", form);
  if (!res) return;
  const o = res.options;
  const opts = [`T=${o.temperature}`, o.top_p != null ? `top-p=${o.top_p}` : "", o.top_k != null ? `top-k=${o.top_k}` : "",
    o.repetition_penalty !== 1 ? `rep=${o.repetition_penalty}` : ""].filter(Boolean).join(" ");
  const stem = state.promptName.replace(/\.[^.]+$/, "");
  for (const s of res.samples.slice().reverse()) {
    addResult(clipElement({
      title: `${stem} · continuation ${s.index}`,
      meta: `seed ${s.seed ?? "random"} · ${opts} · ${s.seconds.toFixed(2)} s, continuation from ${s.prompt_seconds.toFixed(2)} s · ${s.units.ids.length} new units`,
      seconds: s.seconds, view: s.view, segments: [s.prompt_units, s.units], boundary: s.prompt_seconds,
      src: s.wav_url, wavUrl: s.wav_url, unitsUrl: s.units_url, fileStem: `${stem}-continued-${s.index}`,
      judge: s.judge, simLabel: "the prompt",
    }));
  }
}

async function doResynth(convert) {
  const form = new FormData();
  form.append("audio", state.prompt, state.promptName);
  if (convert) form.append("voice", state.voice, state.voiceName);
  form.append("judge", $("#controls [name=judge]").checked ? "1" : "0");
  const res = await job(convert ? "/api/convert" : "/api/resynth", form);
  if (!res) return;
  const stem = state.promptName.replace(/\.[^.]+$/, "");
  addResult(clipElement({
    title: convert ? `${stem} · in the voice of ${state.voiceName}` : `${stem} · resynthesized`,
    meta: `${res.seconds.toFixed(2)} s · ${res.units.ids.length} units`,
    seconds: res.seconds, view: res.view, segments: [res.units], boundary: null,
    src: res.wav_url, wavUrl: res.wav_url, unitsUrl: res.units_url, fileStem: `${stem}-${res.kind}`,
    judge: res.judge, simLabel: convert ? "the voice" : "the input",
  }));
}

async function loadInfo() {
  try {
    const res = await fetch("/api/info");
    const info = await res.json();
    state.info = info;
    const m = info.model, j = m.judges;
    $("#model").innerHTML = [
      `<span class="chip">${esc(m.unit_space)}</span>`,
      `<span class="chip">${m.units_per_second.toFixed(0)} units/s · context ${m.lm_context_units}</span>`,
      j.available ? '<span class="chip ok">Whisper + speaker judges</span>'
        : `<span class="chip off" title="${esc(j.note || "")}">judges off</span>`,
    ].join("");
    document.querySelectorAll(".lim-sec").forEach((e) => { e.textContent = info.limits.max_audio_seconds; });
    $("#controls [name=num_samples]").max = info.limits.max_samples;
    $("#controls [name=seconds]").max = info.limits.max_seconds;
    if (!j.available) $("#controls [name=judge]").checked = false;
  } catch (err) { showError("cannot reach the server: " + err.message); }
}

$("#file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) setAudio("prompt", f, f.name);
  e.target.value = "";
});
$("#voice-file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) setAudio("voice", f, f.name);
  e.target.value = "";
});
recorder($("#record"), (blob, name) => setAudio("prompt", blob, name));
recorder($("#record-voice"), (blob, name) => setAudio("voice", blob, "voice-" + name));
$("#continue").addEventListener("click", doContinue);
$("#resynth").addEventListener("click", () => doResynth(false));
$("#convert").addEventListener("click", () => doResynth(true));
$("#cancel").addEventListener("click", () => { if (state.busy) state.busy.abort(); });
loadInfo();
