// korder console: live updates. The page works without this file; with it, the part of
// the page marked data-live is replaced by what the server sends on its event stream
// (server-sent events, rendered on the server: the same HTML a reload would show).
"use strict";
(function () {
  var live = document.querySelector("[data-live]");
  var state = document.querySelector("[data-live-state]");
  if (!live || !window.EventSource) {
    return;
  }
  function say(text, value) {
    document.body.dataset.live = value;
    if (state) {
      state.textContent = text;
    }
  }
  var source = new EventSource(live.dataset.live);
  source.onopen = function () {
    say("Live", "open");
  };
  source.onerror = function () {
    // EventSource reconnects by itself after the server's retry interval.
    say("Reconnecting…", "reconnecting");
  };
  source.addEventListener("fragment", function (message) {
    // Keyboard users keep their place: the element that had the focus gets it back.
    var active = document.activeElement;
    var key = active && live.contains(active) ? active.getAttribute("data-focus-key") : null;
    live.innerHTML = message.data;
    if (key) {
      var again = live.querySelector('[data-focus-key="' + CSS.escape(key) + '"]');
      if (again) {
        again.focus();
      }
    }
    live.dataset.updates = String(Number(live.dataset.updates || "0") + 1);
    say("Live", "open");
  });
})();
