// Keyboard-first pages: an element with data-key="K" is clicked when K is pressed. Keys never fire
// while typing in a field, on a focused button or link (their own Enter), or with Ctrl/Alt/Meta held,
// so browser shortcuts keep working.
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
  var target = event.target;
  var tag = target && target.tagName;
  if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) return;
  if ((tag === "BUTTON" || tag === "A") && event.key === "Enter") return;
  var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  var element = document.querySelector('[data-key="' + key + '"]');
  if (!element) return;
  event.preventDefault();
  element.click();
});
