// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  const print = document.getElementById("print-button");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", () => window.print());
  }
  const summary = document.querySelector(".error-summary");
  if (summary) summary.focus();
  // The entry form: say, beside the field chosen, who will read the entry
  // (the table below lists every field either way).
  const readers = document.getElementById("entry-readers");
  const field = document.getElementById("f-field");
  if (readers && field) {
    const said = document.createElement("p");
    said.id = "readers-chosen";
    said.className = "hint";
    said.setAttribute("aria-live", "polite");
    field.insertAdjacentElement("afterend", said);
    const show = () => {
      for (const row of readers.querySelectorAll("tr.chosen")) row.classList.remove("chosen");
      const row = document.getElementById("readers-" + field.value);
      said.textContent = row ? "Read by: " + row.querySelector("td").textContent.replace(/\s+/g, " ").trim() : "";
      said.classList.toggle("alone", Boolean(row && row.querySelector(".alone")));
      if (row) row.classList.add("chosen");
    };
    field.addEventListener("change", show);
    show();
  }
  // The entry form's kinds: only the chosen kind's inputs are shown (all of
  // them without this file; only the chosen kind's are sent either way).
  const kinds = document.querySelectorAll('#f-kind input[name="kind"]');
  if (kinds.length) {
    const parts = document.querySelectorAll("[data-kind]");
    const choose = () => {
      const chosen = document.querySelector('#f-kind input[name="kind"]:checked');
      for (const part of parts) part.hidden = Boolean(chosen) && part.dataset.kind !== chosen.value;
    };
    for (const kind of kinds) kind.addEventListener("change", choose);
    // Only the kinds the chosen field takes can be chosen (free text: all).
    const fieldOf = document.getElementById("f-field");
    const offer = () => {
      for (const kind of kinds) {
        kind.disabled = Boolean(fieldOf) && !kind.dataset.fields.split(" ").includes(fieldOf.value);
        if (kind.disabled && kind.checked) kinds[0].checked = true;
      }
      choose();
    };
    if (fieldOf) fieldOf.addEventListener("change", offer);
    offer();
  }
});
