// Keyboard-first pages: an element with data-key="K" is clicked when K is pressed. Keys never fire
// while typing in a field, on a focused button or link (their own Enter), or with Ctrl/Alt/Meta held,
// so browser shortcuts keep working.
//
// Reviewers type ahead, and a key must land on the item they see next, never on the one just answered:
// - While htmx waits for an answer, the old item is still on the page. Its form's request is in flight,
//   so htmx dropped a second key there. Such keys wait in a queue and are pressed once the answer has
//   replaced the item.
// - While a plain form post or link loads a new page, a key would post the old item's form a second
//   time (a blind label overwritten by the next key). Such keys are kept in sessionStorage and pressed on
//   the next page if it is the same page (the next item) and it comes soon.
(function () {
  var STORE = "icm-keys-ahead";
  var MAX_AHEAD = 8;
  var KEEP_MS = 10000;
  var requests = []; // htmx requests sent and not yet answered
  var queue = [];
  var timer = null;
  var leaving = false;
  var leaveTimer = null;

  function element(key) {
    return document.querySelector('[data-key="' + CSS.escape(key) + '"]');
  }

  function busy() {
    // An answered request counts as done even where htmx's events cannot reach the document (its element
    // detached): readyState 4 is set in the task that runs htmx's swap.
    requests = requests.filter(function (xhr) { return xhr.readyState !== 4; });
    if (requests.length) return true;
    // htmx wires up swapped-in content only when it settles (20 ms later): a click before that would
    // submit the new item's form as a whole page, without htmx.
    var config = (window.htmx && window.htmx.config) || {};
    var unsettled = [config.addedClass || "htmx-added", config.settlingClass || "htmx-settling",
                     config.swappingClass || "htmx-swapping"];
    return document.querySelector(unsettled.map(function (c) { return "." + CSS.escape(c); }).join(",")) !== null;
  }

  function leave() {
    leaving = true;
    // A navigation that never happens (cancelled, a download) must not switch the keys off for good.
    clearTimeout(leaveTimer);
    leaveTimer = setTimeout(function () { leaving = false; }, KEEP_MS);
  }

  function keepForNextPage(key) {
    var kept = read();
    if (kept.keys.length >= MAX_AHEAD) return;
    kept.keys.push(key);
    try {
      sessionStorage.setItem(STORE, JSON.stringify({ path: location.pathname, at: Date.now(), keys: kept.keys }));
    } catch (e) { /* storage full or off: the key is lost, as without this script */ }
  }

  function read() {
    try {
      var kept = JSON.parse(sessionStorage.getItem(STORE) || "null");
      if (kept && kept.path === location.pathname && Date.now() - kept.at < KEEP_MS && Array.isArray(kept.keys)) {
        return kept;
      }
    } catch (e) { /* unreadable: start afresh */ }
    return { keys: [] };
  }

  function drain() {
    while (queue.length && !busy() && !leaving) {
      var key = queue.shift();
      var el = element(key);
      if (el) el.click();
    }
    if (leaving) {
      queue.splice(0).forEach(keepForNextPage);
    }
    if (!queue.length && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  // Where the key goes: now, after the answer in flight, or to the next page.
  function handle(key) {
    if (leaving) {
      keepForNextPage(key);
    } else if (busy() || queue.length) {
      if (queue.length < MAX_AHEAD) queue.push(key);
      if (timer === null) timer = setInterval(drain, 25);
    } else {
      element(key).click();
    }
  }

  document.addEventListener("htmx:beforeSend", function (event) {
    if (event.detail && event.detail.xhr) requests.push(event.detail.xhr);
  });
  // Bubble phase on window: htmx has already cancelled the submits and clicks it turns into requests, so
  // whatever is left loads a page (also an hx- form or link where htmx itself failed to load).
  window.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) leave();
  });
  window.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (link && !event.defaultPrevented && !link.hasAttribute("download")
        && link.target !== "_blank" && link.origin === location.origin && !link.getAttribute("href").startsWith("#")) {
      leave();
    }
  });
  // Back to this page from the browser's cache: whatever it was leaving for is behind us. (Not on a first
  // load: pageshow comes after the keys replayed below may have started the next page.)
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) leaving = false;
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) return;
    if ((tag === "BUTTON" || tag === "A") && event.key === "Enter") return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (!element(key)) return;
    event.preventDefault();
    handle(key);
  });

  // Keys typed while this page was loading, on the page before it.
  var kept = read();
  try { sessionStorage.removeItem(STORE); } catch (e) { /* storage off: nothing was kept */ }
  kept.keys.forEach(function (key) {
    if (element(key)) handle(key);
  });
})();
