// Counters that move between the server's frames: an element with data-tick-from="N" shows N plus the
// seconds since the page got it ("since the start was clicked"); data-tick-down counts down instead
// ("about N s left"), never below zero. A swapped-in fragment carries fresh values and starts again.
(() => {
  const tick = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-tick-from]")) {
      if (!el.dataset.tickSeen) el.dataset.tickSeen = String(now);
      const passed = Math.floor((now - Number(el.dataset.tickSeen)) / 1000);
      const base = Number(el.dataset.tickFrom);
      el.textContent = String("tickDown" in el.dataset ? Math.max(0, base - passed) : base + passed);
    }
  };
  tick();  // marks what the page came with now, not at the first interval
  for (const name of ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"]) {
    document.addEventListener(name, tick);
  }
  setInterval(tick, 1000);
})();
