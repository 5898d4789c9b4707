// Copy-to-clipboard for the page that shows a new key once. Loaded as a file:
// the Content-Security-Policy forbids inline script.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.getElementById("copy-status");
    if (!field || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(
        function () { status.textContent = "Copied."; },
        function () { field.select(); status.textContent = "Press Ctrl+C (or ⌘C) to copy."; }
      );
    });
  });
  document.querySelectorAll("input.raw-key").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
});
