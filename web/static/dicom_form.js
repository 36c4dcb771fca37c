// When a DICOM file is chosen on the submission form, read its header's sex and dates
// (POST /api/v1/dicom/tags: the file is read and forgotten, nothing is stored) and
// pre-fill the form, saying so: the person confirms by submitting, or corrects.
(function () {
  "use strict";
  const form = document.getElementById("assessment-form");
  const input = document.getElementById("image");
  const note = document.getElementById("dicom-note");
  if (!form || !input || !note || !form.dataset.dicomTagsUrl) return;
  let latest = 0;  // answers to an earlier choice of file are ignored

  function field(name) { return form.elements.namedItem(name); }

  function show(text, kind) {
    note.textContent = text;
    note.className = kind === "error" ? "errors" : "warning";
    note.dataset.kind = kind;
    note.hidden = false;
  }

  function hide() { note.hidden = true; note.textContent = ""; delete note.dataset.kind; }

  async function looksLikeDicom(file) {
    if (/\.dcm$/i.test(file.name) || file.type === "application/dicom") return true;
    if (file.size < 132) return false;
    const magic = new Uint8Array(await file.slice(128, 132).arrayBuffer());
    return String.fromCharCode.apply(null, magic) === "DICM";  // the DICOM Part 10 preamble
  }

  function yearsMonths(months) {
    const years = Math.floor(months / 12);
    return [years, Math.floor(months - years * 12)];
  }

  function fill(tags) {
    const said = [];
    const missing = [];
    if (tags.sex === "M" || tags.sex === "F") {
      const radio = form.querySelector('input[name=sex][value="' + tags.sex + '"]');
      radio.checked = true;
      said.push("sex " + (tags.sex === "F" ? "female" : "male"));
    } else {
      missing.push("the sex");
    }
    const months = tags.chronological_age_months;
    if (months !== null && months !== undefined) {
      const [years, rest] = yearsMonths(months);
      if (tags.birth_date && tags.study_date) {  // exact: the form counts the age from the dates
        field("birth_date").value = tags.birth_date;
        field("study_date").value = tags.study_date;
        field("age_years").value = "";
        field("age_months").value = "";
        said.push("age " + years + " y " + rest + " m at the study (born " + tags.birth_date +
                  ", studied " + tags.study_date + ")");
      } else {  // from Patient's Age alone
        field("age_years").value = String(years);
        field("age_months").value = String(rest);
        field("birth_date").value = "";
        field("study_date").value = "";
        said.push("age " + years + " y " + rest + " m");
      }
    } else {
      missing.push("the age");
    }
    let text = said.length
      ? "Read from the DICOM header \u2014 please confirm: " + said.join(", ") + "."
      : "The DICOM header gives no sex or age.";
    if (missing.length && said.length) text += " The header does not give " + missing.join(" or ") + ".";
    if (missing.length) text += " Enter " + missing.join(" and ") + " yourself.";
    show(text, said.length ? "prefilled" : "missing");
  }

  input.addEventListener("change", async function () {
    const ticket = ++latest;
    const file = input.files && input.files[0];
    hide();
    if (!file || !(await looksLikeDicom(file)) || ticket !== latest) return;
    show("Reading the DICOM header\u2026", "reading");
    const body = new FormData();
    body.append("image", file);
    const token = field("csrf_token");
    try {
      const response = await fetch(form.dataset.dicomTagsUrl, {
        method: "POST",
        body: body,
        headers: { "Accept": "application/json", "X-CSRFToken": token ? token.value : "" },
        credentials: "same-origin",
      });
      const answer = await response.json().catch(function () { return {}; });
      if (ticket !== latest) return;
      if (response.ok) {
        fill(answer);
      } else {
        show(answer.error || "The DICOM header could not be read (" + response.status + ").", "error");
      }
    } catch (err) {
      if (ticket === latest) show("The DICOM header could not be read: enter the sex and age yourself.", "error");
    }
  });
})();
