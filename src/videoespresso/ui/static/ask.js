// The Ask page: upload (optional), then one chat-completions request to the same server.
"use strict";
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const SVG = "http://www.w3.org/2000/svg";
// As the server-rendered pages write a time (videoespresso.templating.seconds).
function clock(s) {
  if (s < 60) return s.toFixed(2) + " s";
  const m = Math.floor(s / 60), rest = s - 60 * m;
  if (m < 60) return m + ":" + rest.toFixed(1).padStart(4, "0");
  return Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") + ":" + String(Math.floor(rest)).padStart(2, "0");
}
function drawFrame(frame, objects) {
  const fig = el("figure", { class: "frame", "data-index": frame.index });
  const box = el("div", { class: "framebox" });
  box.appendChild(el("img", { src: frame.image, alt: "frame " + frame.index }));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  for (const obj of objects) {
    for (const b of obj.boxes) {
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("class", "box");
      r.setAttribute("data-object", obj.name);
      r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
      r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
      svg.appendChild(r);
    }
  }
  box.appendChild(svg);
  fig.appendChild(box);
  fig.appendChild(el("figcaption", {}, "#" + frame.index + " at " + clock(frame.seconds)));
  return fig;
}
function renderEvidence(text, objects) {
  const out = el("p", { id: "evidence" });
  if (!text) { out.textContent = "(no evidence stage)"; return out; }
  // Inline tags -> highlighted object names; the boxes are drawn on the frames.
  const re = /<obj_start>(.*?)<obj_end>(\s*<box_start>.*?<box_end>)?/gs;
  let pos = 0, m;
  while ((m = re.exec(text)) !== null) {
    out.appendChild(document.createTextNode(text.slice(pos, m.index)));
    out.appendChild(el("mark", { class: "obj" }, m[1]));
    pos = re.lastIndex;
  }
  out.appendChild(document.createTextNode(text.slice(pos)));
  return out;
}
async function upload(file) {
  const res = await fetch("/v1/uploads", { method: "POST", body: file,
    headers: { "X-Filename": file.name, "Content-Type": "application/octet-stream" } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ? body.error.message : res.statusText);
  return body.url;
}
async function ask(event) {
  event.preventDefault();
  const status = document.getElementById("status");
  const result = document.getElementById("result");
  result.replaceChildren();
  status.className = ""; status.textContent = "working...";
  try {
    const file = document.getElementById("upload").files[0];
    const url = file ? await upload(file) : "file://" + document.getElementById("video").value;
    const options = Array.from(document.querySelectorAll("input.option")).map(i => i.value.trim()).filter(Boolean);
    const body = { model: document.body.dataset.model, return_frames: true,
      messages: [{ role: "user", content: [{ type: "video_url", video_url: { url } },
                                           { type: "text", text: document.getElementById("question").value }] }] };
    if (options.length) body.options = options;
    const res = await fetch("/v1/chat/completions", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" } });
    const reply = await res.json();
    if (!res.ok) throw new Error(reply.error ? reply.error.message : res.statusText);
    const ve = reply.videoespresso;
    const frames = el("div", { class: "frames", id: "frames" });
    for (const f of ve.frames) frames.appendChild(drawFrame(f, ve.key_objects));
    result.appendChild(el("h3", {}, "Chosen frames (" + ve.selector + ")"));
    result.appendChild(frames);
    if (ve.selector_fallback) result.appendChild(el("p", { class: "muted", id: "fallback" }, "selector fallback: " + ve.selector_fallback));
    result.appendChild(el("h3", {}, "Evidence"));
    result.appendChild(renderEvidence(ve.evidence, ve.key_objects));
    result.appendChild(el("h3", {}, "Answer"));
    result.appendChild(el("p", { id: "answer" }, reply.choices[0].message.content));
    if (ve.options.length) {
      const chosen = ve.chosen_option ? "(" + ve.chosen_option.letter + ") " + ve.chosen_option.text : "none could be read from the answer";
      result.appendChild(el("p", { id: "chosen" }, "Chosen option: " + chosen));
    }
    const c = ve.compute;
    result.appendChild(el("h3", {}, "Compute"));
    result.appendChild(el("p", { id: "compute" }, c.frames + " frames vs " + c.uniform_frames +
      " uniform: " + (100 * c.frame_ratio).toFixed(1) + " % of the reasoner's frame cost. Tokens: " +
      ve.stages.map(s => s.stage + " " + s.prompt_tokens + "+" + s.completion_tokens).join(", ")));
    status.textContent = "done";
  } catch (err) {
    status.className = "error"; status.textContent = "error: " + err.message;
  }
}
document.getElementById("ask-form").addEventListener("submit", ask);
