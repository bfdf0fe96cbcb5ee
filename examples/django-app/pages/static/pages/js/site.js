// Proves the hashed script URL resolves: replaces the placeholder text.
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("js-status");
  if (el) {
    el.textContent = "Script loaded for release " + document.getElementById("release-id").textContent + ".";
  }
});
