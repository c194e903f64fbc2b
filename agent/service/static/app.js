// The page of `python -m agent serve`: send a photo and a question to POST /v1/inspect, then show
// the report: the answer, the findings as boxes on the photo, the examples the model was shown
// (their crops with the annotated outline), the tool calls (from the trace), timings and usage.
// Every text that comes from the user, the model or the index goes in with textContent, never as
// markup. document.documentElement.dataset.state says where the page is: idle, asking, done, error.
"use strict";

(function () {
  const TOKEN_KEY = "damage-rag-token";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const photoInput = $("photo");
  const tokenInput = $("token");
  const objectUrls = [];

  function setState(state) {
    document.documentElement.dataset.state = state;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function trackUrl(url) {
    objectUrls.push(url);
    return url;
  }

  function releaseUrls() {
    while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
  }

  function token() {
    return tokenInput.value.trim();
  }

  function headers() {
    const t = token();
    return t ? { Authorization: "Bearer " + t } : {};
  }

  // One error sentence out of a failed response: the service's {"error": {"message"}} if any.
  async function failure(response, what) {
    let message = "";
    try {
      const body = await response.json();
      const err = body && body.error;
      message = (err && (err.message || err)) || (body && body.detail) || "";
      if (typeof message !== "string") message = JSON.stringify(message);
    } catch (_) {
      message = "";
    }
    if (response.status === 401) {
      $("auth").open = true;
      tokenInput.focus();
      message = message || "the service wants a bearer token";
      message += " (enter the access token above)";
    }
    return new Error(what + " failed (HTTP " + response.status + ")" + (message ? ": " + message : "."));
  }

  async function api(path, what, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({}, headers(), opts.headers || {});
    let response;
    try {
      response = await fetch(path, opts);
    } catch (exc) {
      throw new Error(what + " failed: the service cannot be reached (" + exc.message + ").");
    }
    if (!response.ok) throw await failure(response, what);
    return response;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  function status(message) {
    $("status").textContent = message;
  }

  // ---- the photo and its finding boxes ---------------------------------------------------------

  function showPhoto(file) {
    const img = $("photo-view");
    clear($("boxes"));
    img.src = trackUrl(URL.createObjectURL(file));
    $("photo-caption").textContent = file.name;
    $("preview-section").hidden = false;
  }

  function imageLoaded(img) {
    if (img.complete && img.naturalWidth > 0) return Promise.resolve(img);
    return new Promise((resolve, reject) => {
      img.addEventListener("load", () => resolve(img), { once: true });
      img.addEventListener("error", () => reject(new Error("image did not load")), { once: true });
    });
  }

  function pct(value) {
    return (Math.max(0, Math.min(1, value)) * 100).toFixed(3) + "%";
  }

  // A finding's box as fractions of the photo: bbox_px against the photo's own size, else bbox_2d / 1000.
  function fractions(finding, width, height) {
    if (Array.isArray(finding.bbox_px) && finding.bbox_px.length === 4 && width > 0 && height > 0) {
      const [x1, y1, x2, y2] = finding.bbox_px;
      return [x1 / width, y1 / height, x2 / width, y2 / height];
    }
    if (Array.isArray(finding.bbox_2d) && finding.bbox_2d.length === 4) {
      return finding.bbox_2d.map((v) => v / 1000);
    }
    return null;
  }

  function labelName(label) {
    if (!label) return "?";
    if (typeof label === "string") return label;
    return label.name || label.key || label.id || "?";
  }

  async function drawBoxes(findings) {
    const layer = $("boxes");
    clear(layer);
    const img = $("photo-view");
    try {
      await imageLoaded(img);
    } catch (_) {
      return;
    }
    findings.forEach((finding, i) => {
      const box = fractions(finding, img.naturalWidth, img.naturalHeight);
      if (!box) return;
      const div = el("div", null, "box");
      div.style.left = pct(box[0]);
      div.style.top = pct(box[1]);
      div.style.width = pct(box[2] - box[0]);
      div.style.height = pct(box[3] - box[1]);
      const conf = typeof finding.confidence === "number" ? " " + finding.confidence.toFixed(2) : "";
      div.appendChild(el("span", (i + 1) + ". " + labelName(finding.label) + conf, "box-label"));
      layer.appendChild(div);
    });
  }

  function showFindings(findings) {
    const list = $("findings");
    clear(list);
    if (!findings.length) {
      list.appendChild(el("li", "No damage reported.", "meta"));
      return;
    }
    findings.forEach((f) => {
      const item = el("li");
      item.appendChild(el("strong", labelName(f.label)));
      const parts = [];
      if (f.location) parts.push("at " + f.location);
      if (f.severity) parts.push(f.severity);
      if (typeof f.confidence === "number") parts.push("confidence " + f.confidence.toFixed(2));
      if (Array.isArray(f.bbox_px)) parts.push("box " + f.bbox_px.join(", ") + " px");
      item.appendChild(el("span", " · " + parts.join(" · ")));
      if (f.evidence) item.appendChild(el("div", f.evidence, "evidence"));
      list.appendChild(item);
    });
  }

  // ---- the examples the model was shown ------------------------------------------------------

  // The outline: polygons ([[x, y], ...] each) and the example's own box, in the crop's pixels.
  function polygonsOf(example) {
    const polygons = Array.isArray(example.polygons) ? example.polygons : [];
    return polygons.filter((p) => Array.isArray(p) && p.length >= 2 && Array.isArray(p[0]));
  }

  function drawOutline(svg, img, example) {
    const width = example.width || img.naturalWidth;
    const height = example.height || img.naturalHeight;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const stroke = Math.max(1.5, width / 150);
    const box = Array.isArray(example.bbox) && example.bbox.length === 4 ? example.bbox : null;
    if (box) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", box[0]);
      rect.setAttribute("y", box[1]);
      rect.setAttribute("width", Math.max(0, box[2] - box[0]));
      rect.setAttribute("height", Math.max(0, box[3] - box[1]));
      rect.setAttribute("class", "crop-box");
      rect.setAttribute("stroke-width", stroke);
      svg.appendChild(rect);
    }
    const own = example.label;
    polygonsOf(example).forEach((points, i) => {
      const poly = document.createElementNS(SVG, "polygon");
      poly.setAttribute("points", points.map((p) => Number(p[0]) + "," + Number(p[1])).join(" "));
      const label = (example.polygon_labels || [])[i];
      poly.setAttribute("class", "outline" + (label && own && label !== own ? " other" : ""));
      poly.setAttribute("stroke-width", stroke);
      svg.appendChild(poly);
    });
  }

  async function showExample(id, cited, traceId, list) {
    const item = el("li", null, "example");
    const figure = el("figure");
    const stage = el("div", null, "stage");
    const img = el("img");
    img.alt = "Example " + id;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "outline-layer");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("preserveAspectRatio", "none");
    stage.appendChild(img);
    stage.appendChild(svg);
    const caption = el("figcaption");
    caption.appendChild(el("code", id));
    if (cited) caption.appendChild(el("span", "cited", "badge"));
    figure.appendChild(stage);
    figure.appendChild(caption);
    item.appendChild(figure);
    list.appendChild(item);
    const path = "/v1/examples/" + encodeURIComponent(id);
    const query = traceId ? "?trace=" + encodeURIComponent(traceId) : "";
    try {
      const info = await api(path + query, "Example " + id).then((r) => r.json());
      const label = info.label_name || info.label || (info.labels || []).join(", ") || info.kind || "?";
      const parts = [label];
      if (info.source_image) parts.push(String(info.source_image));
      if (info.zone) parts.push("zone " + info.zone);
      if (typeof info.score === "number") parts.push("similarity " + info.score.toFixed(3));
      caption.appendChild(el("div", parts.join(" · ")));
      img.alt = "Example " + id + ": " + label + (info.source_image ? ", from " + info.source_image : "");
      if (info.has_image === false) {
        stage.hidden = true;
        caption.appendChild(el("div", "no stored crop", "meta"));
        return;
      }
      const blob = await api(path + "/image", "Example image " + id).then((r) => r.blob());
      img.src = trackUrl(URL.createObjectURL(blob));
      await imageLoaded(img);
      drawOutline(svg, img, info);
    } catch (exc) {
      caption.appendChild(el("div", exc.message, "error-text"));
    }
  }

  async function showExamples(report) {
    const list = $("examples");
    clear(list);
    const ids = report.examples_used || [];
    const cited = new Set(report.examples_cited || []);
    $("examples-note").textContent = ids.length
      ? ids.length + " example(s); " + cited.size + " cited by the model."
      : "None (" + (report.mode === "zero-shot" ? "zero-shot mode" : "no example was retrieved") + ").";
    await Promise.all(ids.map((id) => showExample(id, cited.has(id), report.trace_id, list)));
  }

  // ---- tool calls, timings, usage, trace -----------------------------------------------------

  function traceEvents(body) {
    if (Array.isArray(body)) return body;
    return (body && (body.events || body.trace)) || [];
  }

  async function showTools(report) {
    const list = $("tools");
    clear(list);
    $("tool-count").textContent = (report.tool_calls || 0) + " tool call(s).";
    if (!report.trace_id) return;
    try {
      const response = await api("/v1/traces/" + encodeURIComponent(report.trace_id), "The trace");
      const calls = traceEvents(await response.json()).filter((e) => e && e.type === "tool_call");
      calls.forEach((call) => {
        const item = el("li");
        item.appendChild(el("code", call.name));
        item.appendChild(el("span", "(" + JSON.stringify(call.arguments || {}) + ")"));
        if (typeof call.seconds === "number") item.appendChild(el("span", " · " + call.seconds.toFixed(3) + " s", "meta"));
        if (call.error) item.appendChild(el("span", " error", "error-text"));
        list.appendChild(item);
      });
    } catch (exc) {
      list.appendChild(el("li", exc.message, "error-text"));
    }
  }

  function showTimings(report, roundTrip) {
    const body = $("timings").tBodies[0];
    clear(body);
    const rows = Object.entries(report.timings || {});
    rows.push(["round trip (this browser)", roundTrip]);
    rows.forEach(([name, seconds]) => {
      const row = el("tr");
      row.appendChild(el("th", name.replace(/_s$/, ""))).setAttribute("scope", "row");
      const isSeconds = name.endsWith("_s") || name.startsWith("round trip");
      const shown = typeof seconds !== "number" ? String(seconds) : isSeconds ? seconds.toFixed(3) : String(seconds);
      row.appendChild(el("td", shown));
      body.appendChild(row);
    });
    const usage = Object.entries(report.usage || {}).map(([k, v]) => k.replace(/_/g, " ") + " " + v);
    $("usage").textContent = usage.length ? "Tokens: " + usage.join(" · ") : "";
  }

  function traceLink(report) {
    const link = $("trace-link");
    link.hidden = !report.trace_id;
    link.href = "/v1/traces/" + encodeURIComponent(report.trace_id || "") + "?format=html";
  }

  // With a token, a plain link cannot authenticate: fetch the page and open it from a blob URL.
  $("trace-link").addEventListener("click", async (event) => {
    if (!token()) return;
    event.preventDefault();
    const tab = window.open("", "_blank");
    try {
      const response = await api(event.currentTarget.getAttribute("href"), "The trace page");
      const html = await response.blob();
      const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      if (tab) tab.location.href = url;
      else window.location.href = url;
    } catch (exc) {
      if (tab) tab.close();
      showError(exc.message);
    }
  });

  function showReport(report, roundTrip) {
    $("answer").textContent = report.answer || (report.valid === false ? "(no valid answer)" : "");
    const meta = ["mode " + report.mode, "model " + report.model, "trace " + report.trace_id];
    if (report.damage_detected === true) meta.unshift("damage detected");
    else if (report.damage_detected === false) meta.unshift("no damage detected");
    if (report.valid === false) meta.push("INVALID answer: " + (report.error || "unknown reason"));
    $("report-meta").textContent = meta.join(" · ");
    showFindings(report.findings || []);
    showTimings(report, roundTrip);
    traceLink(report);
    $("result").hidden = false;
  }

  // ---- the form ------------------------------------------------------------------------------

  photoInput.addEventListener("change", () => {
    if (photoInput.files && photoInput.files[0]) showPhoto(photoInput.files[0]);
  });

  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  if (tokenInput.value) $("auth").open = true;
  tokenInput.addEventListener("input", () => {
    if (token()) sessionStorage.setItem(TOKEN_KEY, token());
    else sessionStorage.removeItem(TOKEN_KEY);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const file = photoInput.files && photoInput.files[0];
    const question = $("question").value.trim();
    if (!file) return showError("Choose a photo first.");
    if (!question) return showError("Type a question.");
    const data = new FormData();
    data.append("photo", file, file.name);
    data.append("question", question);
    if ($("mode").value) data.append("mode", $("mode").value);
    if ($("label").value.trim()) data.append("label", $("label").value.trim());
    const button = $("ask");
    button.disabled = true;
    setState("asking");
    status("Asking… (the model looks at the photo and the retrieved examples)");
    $("result").hidden = true;
    releaseUrls();
    showPhoto(file);
    const started = performance.now();
    try {
      const response = await api("/v1/inspect", "The inspection", { method: "POST", body: data });
      const report = await response.json();
      const roundTrip = (performance.now() - started) / 1000;
      showReport(report, roundTrip);
      status("Answered in " + roundTrip.toFixed(2) + " s.");
      await Promise.all([drawBoxes(report.findings || []), showExamples(report), showTools(report)]);
      setState("done");
    } catch (exc) {
      status("");
      showError(exc.message);
      setState("error");
    } finally {
      button.disabled = false;
    }
  });

  window.addEventListener("pagehide", releaseUrls);
  setState("idle");
})();
