// hookgate console: copy buttons and the events page's live tail. Loaded with `defer` by
// every page; without it every page still reads the same, only these extras stay hidden.
"use strict";

(function () {
  // htmx posts pause and resume from the endpoints list and swaps in just that row, picked from
  // the page the server answers with after its redirect. Anything else (signed out meanwhile,
  // a refusal) is not a row: follow it, or show the page, as the plain form would have.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    const xhr = evt.detail.xhr;
    const landed = new URL(xhr.responseURL || location.href, location.href);
    if (xhr.status < 400 && landed.pathname === location.pathname) {
      return;
    }
    evt.detail.shouldSwap = false;
    if (xhr.status < 400) {
      location.assign(landed.href);
    } else {
      document.open();
      document.write(xhr.responseText);
      document.close();
    }
  });

  // One polite region for whatever a button did, created before anything is said in it.
  function announcer() {
    let region = document.getElementById("console-said");
    if (!region) {
      region = document.createElement("p");
      region.id = "console-said";
      region.className = "visually-hidden";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    return region;
  }

  // Copy buttons: <button type="button" class="copy" data-copy="ELEMENT_ID" hidden>.
  const copies = document.querySelectorAll("button.copy[data-copy]");
  if (copies.length > 0) {
    const said = announcer();
    copies.forEach(function (button) {
      const target = document.getElementById(button.dataset.copy);
      if (!target) {
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        const text = target.textContent;
        const selectIt = function () {
          // Without clipboard access (plain http beyond localhost): select it to copy by hand.
          const range = document.createRange();
          range.selectNodeContents(target);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          said.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () {
            said.textContent = "Copied.";
            // Seen as well as heard, then back to what it does.
            const label = button.textContent;
            button.textContent = "Copied ✓";
            window.setTimeout(function () {
              button.textContent = label;
            }, 2000);
          }, selectIt);
        } else {
          selectIt();
        }
      });
    });
  }

  // The live tail: new events stream into a region above the list, held back until asked
  // for, so the page being read never moves (rows are never added to the cursor page).
  const live = document.getElementById("live");
  if (!live || typeof EventSource === "undefined") {
    return;
  }
  const toggle = document.getElementById("live-toggle");
  const status = document.getElementById("live-status");
  const show = document.getElementById("live-show");
  const list = document.getElementById("live-list");
  const rows = document.getElementById("live-rows");
  const pending = document.getElementById("live-pending");
  let source = null;
  let gapNote = "";
  live.hidden = false;

  function say() {
    const n = pending.rows.length;
    let text;
    if (!source) {
      text = "";
    } else if (source.readyState === EventSource.CLOSED) {
      text = "The live tail stopped. Reload the page to start it again.";
    } else if (source.readyState === EventSource.CONNECTING) {
      text = "Connecting…";
    } else if (n === 0) {
      text = "Waiting for new events…";
    } else {
      text = n === 1 ? "1 new event" : n + " new events";
    }
    if (gapNote) {
      text = text + " " + gapNote;
    }
    status.textContent = text;
    // Disabled rather than hidden: the bar keeps its height, so the list below never moves.
    show.disabled = n === 0;
  }

  // A tab left open on a busy gateway must not grow without end: keep the newest rows only
  // (the oldest dropped are still in the list below, on reload).
  const KEEP = 500;
  function trim(body) {
    while (body.children.length > KEEP) {
      body.removeChild(body.lastChild);
      if (!gapNote) {
        gapNote = "Older new events were dropped from this view; reload to see them all.";
      }
    }
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
    say();
  }

  function start() {
    source = new EventSource(live.dataset.src);
    source.onopen = say;
    source.onerror = say;
    source.addEventListener("row", function (e) {
      const holder = document.createElement("tbody");
      holder.innerHTML = e.data;
      const row = holder.querySelector("tr");
      if (!row || live.querySelector('tr[data-event="' + row.dataset.event + '"]')) {
        return;
      }
      pending.insertBefore(row, pending.firstChild);
      trim(pending);
      say();
    });
    source.addEventListener("status", function (e) {
      const update = JSON.parse(e.data);
      live.querySelectorAll('[data-delivery="' + update.delivery + '"]').forEach(function (badge) {
        badge.className = "badge " + update.status;
        badge.textContent = update.endpoint + ": " + update.status;
      });
    });
    source.addEventListener("gap", function (e) {
      gapNote = e.data;
      say();
    });
    say();
  }

  toggle.addEventListener("change", function () {
    if (toggle.checked) {
      start();
    } else {
      stop();
    }
  });
  show.addEventListener("click", function () {
    // The newest first, above what was shown before.
    while (pending.lastChild) {
      rows.insertBefore(pending.lastChild, rows.firstChild);
    }
    trim(rows);
    list.hidden = false;
    say();
    const first = rows.querySelector("a");
    if (first) {
      first.focus();
    }
  });
  window.addEventListener("pagehide", stop);
})();
