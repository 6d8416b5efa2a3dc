// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  const print = document.getElementById("print-button");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", () => window.print());
  }
  const summary = document.querySelector(".error-summary");
  if (summary) summary.focus();
});
