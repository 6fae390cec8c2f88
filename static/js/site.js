// mjsite's own script: no inline scripts anywhere (the pages are ready for a strict CSP).
(function () {
  "use strict";

  // The time range is a preset or custom dates, never both (the server would let the
  // dates win, but the page must not send what it does not mean): picking a preset empties
  // the dates, and opening Custom or typing a date unchecks the preset.
  var DATES = "input[name=submitted_after], input[name=submitted_before]";

  function clearDates(form) {
    Array.prototype.forEach.call(form.querySelectorAll(DATES), function (input) {
      input.value = "";
    });
  }

  function clearPreset(form) {
    Array.prototype.forEach.call(form.querySelectorAll("input[name=range]"), function (radio) {
      radio.checked = false;
      var chip = radio.closest(".chip");
      if (chip) chip.classList.remove("selected");
    });
    var custom = form.querySelector(".custom-range summary");
    if (custom) custom.classList.add("selected");
  }

  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el.matches && el.matches(DATES) && el.form && el.value) clearPreset(el.form);
  });

  // "toggle" does not bubble: caught on its way down.
  document.addEventListener("toggle", function (event) {
    var el = event.target;
    if (!el.matches || !el.matches("details.custom-range") || !el.open) return;
    var form = el.closest("form");
    if (form) clearPreset(form);
  }, true);

  // Selects and radios marked data-autosubmit send their form on change.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches(DATES) && el.form && el.value) clearPreset(el.form);
    if (el.matches && el.matches("input[name=range]") && el.checked && el.form) {
      clearDates(el.form);
    }
    if (el.matches && el.matches("[data-autosubmit]") && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
    }
  });

  // The lightbox: click a thumbnail to see it large; arrows page through the list.
  var box = null, img, caption, links = [], index = 0;

  function setup() {
    box = document.getElementById("lightbox");
    if (!box) return false;
    img = box.querySelector("img");
    caption = box.querySelector("figcaption");
    box.querySelector(".lb-close").addEventListener("click", close);
    box.querySelector(".lb-prev").addEventListener("click", function () { show(index - 1); });
    box.querySelector(".lb-next").addEventListener("click", function () { show(index + 1); });
    box.addEventListener("click", function (event) { if (event.target === box) close(); });
    return true;
  }

  function show(i) {
    if (!links.length) return;
    index = (i + links.length) % links.length;
    var link = links[index];
    img.src = link.getAttribute("href");
    img.alt = link.querySelector("img") ? link.querySelector("img").alt : "";
    caption.textContent = link.getAttribute("data-caption") || "";
    var detail = link.getAttribute("data-detail");
    if (detail) {
      var a = document.createElement("a");
      a.href = detail;
      a.textContent = " ›";
      caption.appendChild(a);
    }
    var single = links.length < 2;
    box.querySelector(".lb-prev").hidden = single;
    box.querySelector(".lb-next").hidden = single;
    // static/js/curation.js draws the task's star and tags under it.
    box.dispatchEvent(new CustomEvent("lightbox:show", { bubbles: true, detail: { link: link } }));
  }

  function open(link) {
    if (!box && !setup()) return;
    links = Array.prototype.slice.call(document.querySelectorAll("a[data-lightbox]"));
    box.hidden = false;
    document.body.style.overflow = "hidden";
    show(Math.max(0, links.indexOf(link)));
    box.querySelector(".lb-close").focus();
  }

  function close() {
    if (!box) return;
    box.hidden = true;
    img.removeAttribute("src");
    document.body.style.overflow = "";
    box.dispatchEvent(new CustomEvent("lightbox:close", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-lightbox]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    open(link);
  });

  document.addEventListener("keydown", function (event) {
    if (!box || box.hidden) return;
    if (document.querySelector("dialog[open]")) return; // keys belong to the dialog over it
    if (event.key === "Escape") close();
    else if (event.key === "ArrowLeft") show(index - 1);
    else if (event.key === "ArrowRight") show(index + 1);
  });
})();
