// genlab rate: participant page. Plain JavaScript, no external resources; keyboard and touch friendly.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = "genlab-rate:" + location.host;
  let cfg = null, token = null, sessionId = null, trial = null, state = null;
  let inputKind = "pointer";

  function show(id) {
    for (const s of ["consent", "instructions", "trial", "done"]) $(s).hidden = (s !== id);
  }
  function error(msg) { const e = $("error"); e.textContent = msg || ""; e.hidden = !msg; }
  function client() {
    return { screen_w: screen.width | 0, screen_h: screen.height | 0,
             viewport_w: window.innerWidth | 0, viewport_h: window.innerHeight | 0, input: inputKind };
  }
  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = { error: "HTTP " + r.status }; }
    if (!r.ok) { const err = new Error(data.error || ("HTTP " + r.status)); err.status = r.status; throw err; }
    return data;
  }

  document.addEventListener("keydown", () => { inputKind = "keyboard"; }, true);
  document.addEventListener("pointerdown", (e) => { inputKind = e.pointerType === "touch" ? "touch" : "pointer"; }, true);

  async function init() {
    try {
      cfg = await api("GET", "/api/config");
    } catch (e) { error("Cannot reach the test server: " + e.message); return; }
    document.title = cfg.title;
    $("title").textContent = cfg.title;
    $("consent-text").textContent = cfg.consent;
    $("instructions-text").textContent = cfg.instructions;
    const saved = JSON.parse(localStorage.getItem(KEY) || "null");
    if (saved && saved.token) {
      token = saved.token;
      try {
        const r = await api("POST", "/api/resume", { client: client() });
        sessionId = r.session_id;
        return next();
      } catch (e) { token = null; localStorage.removeItem(KEY); }
    }
    show("consent");
    $("consent-box").focus();
  }

  $("consent-box").addEventListener("change", () => { $("consent-go").disabled = !$("consent-box").checked; });
  $("consent-go").addEventListener("click", () => { show("instructions"); $("start").focus(); });
  $("start").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/session", { consent: true, client: client() });
      token = r.token; sessionId = r.session_id;
      localStorage.setItem(KEY, JSON.stringify({ token: token, participant_id: r.participant_id }));
      next();
    } catch (e) { error(e.message); }
  });

  async function next() {
    error("");
    let r;
    try { r = await api("GET", "/api/next"); } catch (e) { error(e.message); return; }
    if (r.done) { $("code").textContent = r.completion_code; show("done"); $("code").focus && $("code").focus(); return; }
    render(r.trial, r.answered);
  }

  function mediaElement(url, label, onEnded) {
    if (cfg.modality === "image") {
      const img = document.createElement("img");
      img.src = url; img.alt = label;
      return img;
    }
    if (cfg.modality === "audio") {
      const a = document.createElement("audio");
      a.controls = true; a.preload = "auto"; a.src = url;
      a.setAttribute("aria-label", label);
      a.addEventListener("ended", onEnded);
      return a;
    }
    const pre = document.createElement("pre");
    pre.setAttribute("aria-label", label);
    fetch(url).then((r) => r.text()).then((t) => { pre.textContent = t; });
    return pre;
  }

  function render(t, answered) {
    trial = t;
    const n = t.stimuli.length;
    state = { shown: performance.now(), played: new Array(n).fill(false), answer: null,
              touched: new Array(n).fill(false), timeOk: cfg.min_time_ms <= 0 };
    $("progress-text").textContent = "Trial " + (t.index + 1) + " of " + t.n_trials;
    $("progress-bar").max = t.n_trials; $("progress-bar").value = answered;
    $("question").textContent = cfg.question;
    const ref = $("reference"); ref.innerHTML = "";
    ref.hidden = !t.reference;
    if (t.reference) {
      const lab = document.createElement("div"); lab.className = "label"; lab.textContent = "Reference";
      ref.append(lab, mediaElement(t.reference.url, "Reference", () => {}));
    }
    const box = $("stimuli"); box.innerHTML = "";
    const controls = $("controls"); controls.innerHTML = "";
    t.stimuli.forEach((s, i) => {
      const d = document.createElement("div"); d.className = "stim";
      const label = (t.kind === "pairwise") ? (i === 0 ? "A (left)" : "B (right)") :
                    (t.kind === "mushra") ? s.slot : (cfg.modality === "audio" ? "Recording" : "");
      if (label) { const l = document.createElement("div"); l.className = "label"; l.textContent = label; d.append(l); }
      d.append(mediaElement(s.url, label || "stimulus", () => { state.played[i] = true; update(); }));
      if (t.kind === "mushra") d.append(mushraSlider(i, s.slot));
      box.append(d);
    });
    if (t.kind === "mos") {
      cfg.mos_labels.forEach((lab, i) => controls.append(choiceButton((i + 1) + " " + lab, { rating: i + 1 }, "mos-" + (i + 1))));
    } else if (t.kind === "pairwise") {
      controls.append(choiceButton("A (left) is better", { choice: "left" }, "choose-left"));
      if (cfg.allow_no_preference) controls.append(choiceButton("No preference", { choice: "none" }, "choose-none"));
      controls.append(choiceButton("B (right) is better", { choice: "right" }, "choose-right"));
    } else if (t.kind === "hype") {
      controls.append(choiceButton("Real", { judgement: "real" }, "judge-real"));
      controls.append(choiceButton("Generated (fake)", { judgement: "fake" }, "judge-fake"));
    } else {
      state.answer = { scores: new Array(n).fill(0) };
    }
    if (cfg.min_time_ms > 0) setTimeout(() => { state.timeOk = true; update(); }, cfg.min_time_ms);
    show("trial");
    update();
    const first = box.querySelector("audio, input") || controls.querySelector("button");
    if (first) first.focus();
  }

  function choiceButton(text, answer, id) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.id = id; b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => {
      state.answer = answer;
      for (const o of $("controls").querySelectorAll("button")) o.setAttribute("aria-pressed", String(o === b));
      update();
    });
    return b;
  }

  function mushraSlider(i, slot) {
    const row = document.createElement("div"); row.className = "mushra-row";
    const lab = document.createElement("label"); lab.textContent = slot; lab.htmlFor = "score-" + slot;
    const r = document.createElement("input");
    r.type = "range"; r.min = 0; r.max = 100; r.step = 1; r.value = 0; r.id = "score-" + slot;
    r.setAttribute("aria-label", "Score for " + slot + " (0 to 100)");
    const out = document.createElement("output"); out.textContent = "0";
    r.addEventListener("input", () => {
      state.answer.scores[i] = parseInt(r.value, 10); state.touched[i] = true; out.textContent = r.value; update();
    });
    row.append(lab, r, out);
    return row;
  }

  function ready() {
    if (!state || !state.answer) return "Choose an answer.";
    if (trial.kind === "mushra" && !state.touched.every(Boolean)) return "Rate every version (move each slider).";
    if (cfg.modality === "audio" && cfg.require_played && !state.played.every(Boolean)) return "Play every recording to the end.";
    if (!state.timeOk) return "Please take a moment to look and listen.";
    return "";
  }
  function update() {
    const why = ready();
    $("submit").disabled = !!why;
    $("status").textContent = why;
  }

  async function submit() {
    if (ready()) return;
    $("submit").disabled = true;
    const body = { session_id: sessionId, trial_index: trial.index, trial_id: trial.trial_id,
                   response: state.answer, rt_ms: Math.round(performance.now() - state.shown),
                   played: state.played, client: client() };
    try { await api("POST", "/api/response", body); }
    catch (e) { if (e.status !== 409) { error(e.message); update(); return; } }
    next();
  }
  $("submit").addEventListener("click", submit);

  document.addEventListener("keydown", (e) => {
    if ($("trial").hidden || !trial || e.altKey || e.ctrlKey || e.metaKey) return;
    const tag = (e.target && e.target.tagName) || "";
    const k = e.key;
    const press = (id) => { const b = $(id); if (b) { b.click(); b.focus(); e.preventDefault(); } };
    if (k === "Enter" && e.target !== $("submit")) { submit(); e.preventDefault(); return; }
    if (tag === "INPUT") return;   // arrow keys belong to the MUSHRA sliders
    if (trial.kind === "mos" && /^[1-5]$/.test(k)) press("mos-" + k);
    else if (trial.kind === "pairwise") {
      if (k === "ArrowLeft" || k === "a" || k === "A") press("choose-left");
      else if (k === "ArrowRight" || k === "b" || k === "B") press("choose-right");
      else if (k === "n" || k === "N") press("choose-none");
    } else if (trial.kind === "hype") {
      if (k === "r" || k === "R") press("judge-real");
      else if (k === "f" || k === "F") press("judge-fake");
    }
  });

  init();
})();
