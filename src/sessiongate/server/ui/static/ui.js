// sessiongate control page: the live parts (session transcript, audit stream).
// One WebSocket to /ws, signed in by the page's cookie; no token in the page.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main) return;
  const liveSession = main.dataset.liveSession;
  const liveAudit = main.dataset.liveAudit;
  const transcript = document.getElementById("transcript");
  if ((liveSession && transcript && transcript.dataset.live) || liveAudit) {
    connect(liveSession ? onSessionEvent : onAuditEvent,
      liveSession ? { method: "sessions.subscribe", params: { sessionKey: liveSession } }
                  : { method: "audit.subscribe", params: {} });
  }

  function setStatus(text, on) {
    const status = document.getElementById("live-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("on", on);
  }

  function connect(onEvent, subscription, attempt) {
    attempt = attempt || 0;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/ws");
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "req", id: 1, method: "connect", params: {} }));
      ws.send(JSON.stringify({ type: "req", id: 2, method: subscription.method, params: subscription.params }));
    };
    ws.onmessage = function (message) {
      const frame = JSON.parse(message.data);
      if (frame.type === "res" && frame.id === 2) {
        setStatus(frame.ok ? "live" : "not live: " + frame.error.message, frame.ok);
        attempt = 0;
      } else if (frame.type === "res" && !frame.ok) {
        setStatus("not live: " + frame.error.message, false);
      } else if (frame.type === "event") {
        onEvent(frame.event, frame.payload);
      }
    };
    ws.onclose = function () {
      setStatus("reconnecting…", false);
      const delay = Math.min(30000, 1000 * Math.pow(2, attempt));
      setTimeout(function () { connect(onEvent, subscription, attempt + 1); }, delay);
    };
  }

  let fetching = null;
  function onSessionEvent(name) {
    if (name !== "run.completed" && name !== "run.failed" && name !== "run.started") return;
    if (fetching) { fetching.then(function () { onSessionEvent(name); }); return; }
    const rows = transcript.querySelectorAll("li[data-seq]");
    const last = rows.length ? rows[rows.length - 1].dataset.seq : "0";
    const url = "/ui/messages?key=" + encodeURIComponent(liveSession) + "&after=" + last;
    fetching = fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) { appendMessages(html); })
      .finally(function () { fetching = null; });
  }

  function appendMessages(html) {
    const template = document.createElement("template");
    template.innerHTML = html; // server-rendered and escaped by the page's own templates
    const known = new Set(Array.from(transcript.querySelectorAll("li[data-seq]"), function (li) { return li.dataset.seq; }));
    template.content.querySelectorAll("li[data-seq]").forEach(function (li) {
      if (known.has(li.dataset.seq)) return;
      li.classList.add("fresh");
      transcript.appendChild(li);
    });
    const empty = document.getElementById("no-messages");
    if (empty && transcript.children.length) empty.hidden = true;
    const newest = transcript.querySelector("li[data-seq]:last-child");
    const count = document.getElementById("message-count");
    if (newest && count) count.textContent = newest.dataset.seq + " message(s)";
  }

  function eventAgent(event) {
    const parts = String(event.canonicalKey || event.sessionKey || "").split(":");
    return parts.length > 2 && parts[0] === "agent" ? parts[1] : "";
  }

  // controls and bidi formatting shown as <U+XXXX>, as the server's templates show them
  const INVISIBLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function visible(text) {
    return String(text).replace(INVISIBLE, function (c) {
      return "\u27e8U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "\u27e9";
    });
  }

  function keyCode(text) {
    // a key may break only after a colon, never inside a segment (as the server renders it)
    const code = document.createElement("code");
    code.className = "key";
    String(text).split(":").forEach(function (part, index) {
      if (index > 0) {
        code.append(":");
        code.appendChild(document.createElement("wbr"));
      }
      code.append(visible(part));
    });
    return code;
  }

  function cell(row, text, asCode) {
    const td = document.createElement("td");
    if (asCode && text) {
      String(text).split(" ").forEach(function (key, index) {
        if (index > 0) td.append(" ");
        td.appendChild(keyCode(key));
      });
    } else {
      td.textContent = visible(text || "");
    }
    row.appendChild(td);
    return td;
  }

  function onAuditEvent(name, event) {
    if (name !== "audit") return;
    if (main.dataset.decision && event.decision !== main.dataset.decision) return;
    if (main.dataset.agent && eventAgent(event) !== main.dataset.agent) return;
    const row = document.createElement("tr");
    row.className = "fresh decision-" + event.decision;
    const time = cell(row, String(event.time || "").replace("T", " ").slice(0, 19));
    time.setAttribute("data-live", "1");
    const pill = document.createElement("span");
    pill.className = "pill d-" + event.decision;
    pill.textContent = event.decision;
    row.appendChild(document.createElement("td")).appendChild(pill);
    const requested = event.requestedKey || event.sessionKey;
    const keyCell = cell(row, requested, true);
    if (event.canonicalKey && event.canonicalKey !== requested) {
      const moved = document.createElement("div");
      moved.className = "moved";
      moved.append("→ ");
      moved.appendChild(keyCode(event.canonicalKey));
      keyCell.appendChild(moved);
    }
    const caller = event.caller
      ? (event.caller.sessionKey || "operator") + " via " + event.caller.entryPoint : "doctor";
    cell(row, caller);
    cell(row, event.rule);
    cell(row, Array.isArray(event.lint) ? event.lint.join("; ") : (event.reason || ""));
    cell(row, (event.suggestions || []).join(" "), true);
    const labels = ["Time", "Decision", "Key", "Caller", "Rule", "Lint", "Suggestions"];
    Array.prototype.forEach.call(row.children, function (td, index) {
      td.setAttribute("data-label", labels[index]);
    });
    document.getElementById("audit-rows").prepend(row);
    document.getElementById("audit-empty").hidden = true;
  }
})();
