// A form with data-confirm asks before it submits (the pages' CSP allows no inline handlers).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
}, true);
