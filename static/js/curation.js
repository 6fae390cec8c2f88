// Curation on the list, the gallery, the detail page and the lightbox: stars, tags, a
// selection with bulk actions, and the keys (arrows, x, f, t, c, Esc, ?). Every text
// comes translated from templates/curation/_ui.html; user text goes in as textContent.
(function () {
  "use strict";

  var root = document.getElementById("curation");
  if (!root) return; // not logged in
  var cfg = root.dataset;
  var marks = {}; // pk -> {favourite, tags, prompt}
  var rights = {};
  var selected = new Set();
  var lastClicked = null; // the pk a shift-click extends from
  var lightboxPk = null; // the task the lightbox shows
  var dialogTargets = []; // the pks the open tag or collection dialog acts on

  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function toast(text) {
    var el = document.getElementById("curation-toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { el.hidden = true; }, 2500);
  }

  // The tasks on this page: rows of the list, cards of the gallery, the detail page.
  var onListPage = /\bpage-(list|gallery)\b/.test(document.body.className);

  function items() {
    if (!onListPage) return [];
    return Array.prototype.slice.call(
      document.querySelectorAll("table.tasks tr.task-row, .page-gallery .gallery figure.card")
    );
  }

  function pkOf(el) {
    var holder = el && el.closest && el.closest("[id^='task-'], [data-task-pk]");
    if (!holder) return null;
    return holder.dataset.taskPk || holder.id.slice(5);
  }

  function itemOf(pk) {
    return document.getElementById("task-" + pk);
  }

  function post(url, data) {
    var body = new URLSearchParams();
    Object.keys(data).forEach(function (key) {
      [].concat(data[key]).forEach(function (value) { body.append(key, value); });
    });
    return fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      body: body,
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error(response.status);
      return response.json();
    });
  }

  function load(pks) {
    if (!pks.length) return Promise.resolve();
    var query = pks.map(function (pk) { return "pk=" + encodeURIComponent(pk); }).join("&");
    return fetch(cfg.marksUrl + "?" + query, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        rights = data.rights;
        Object.keys(data.marks).forEach(function (pk) { marks[pk] = data.marks[pk]; });
        pks.forEach(draw);
        applyRights();
      });
  }

  function applyRights() {
    document.querySelectorAll("[data-needs]").forEach(function (el) {
      el.hidden = !rights[el.dataset.needs];
    });
  }

  // Drawing a task's star, tags and tick

  function starButton(pk) {
    var on = marks[pk] && marks[pk].favourite;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "star" + (on ? " on" : "");
    button.dataset.star = pk;
    button.textContent = on ? "★" : "☆";
    button.title = on ? cfg.unstar : cfg.star;
    button.setAttribute("aria-label", button.title);
    button.setAttribute("aria-pressed", on ? "true" : "false");
    return button;
  }

  function tagList(pk) {
    var list = document.createElement("span");
    list.className = "tag-list";
    ((marks[pk] && marks[pk].tags) || []).forEach(function (name) {
      var a = document.createElement("a");
      a.className = "tag";
      a.href = "?tag=" + encodeURIComponent(name);
      a.textContent = "#" + name;
      list.appendChild(a);
    });
    return list;
  }

  function marksBar(pk, withTick) {
    var bar = document.createElement("span");
    bar.className = "marks";
    bar.dataset.marksFor = pk;
    if (withTick) {
      var tick = document.createElement("input");
      tick.type = "checkbox";
      tick.className = "select-task";
      tick.dataset.pk = pk;
      tick.checked = selected.has(pk);
      tick.setAttribute("aria-label", cfg.select);
      bar.appendChild(tick);
    }
    bar.appendChild(starButton(pk));
    if (rights.tag) {
      var tag = document.createElement("button");
      tag.type = "button";
      tag.className = "tag-button";
      tag.dataset.tagFor = pk;
      tag.textContent = "#";
      tag.title = cfg.tagLabel;
      tag.setAttribute("aria-label", cfg.tagLabel);
      bar.appendChild(tag);
    }
    bar.appendChild(tagList(pk));
    return bar;
  }

  function draw(pk) {
    document.querySelectorAll("[data-marks-for='" + pk + "']").forEach(function (old) {
      old.remove();
    });
    var item = itemOf(pk);
    if (item) {
      var place = item.querySelector("figcaption") || item.querySelector(".c-id") || item;
      place.insertBefore(marksBar(pk, true), place.firstChild);
      item.classList.toggle("is-selected", selected.has(pk));
    }
    var detail = document.querySelector(".task-curation[data-task-pk='" + pk + "']");
    if (detail) detail.insertBefore(marksBar(pk, false), detail.firstChild);
    if (lightboxPk === pk) drawLightbox();
  }

  // The lightbox (static/js/site.js) tells which image it shows.

  function drawLightbox() {
    var box = document.getElementById("lightbox");
    var bar = box.querySelector(".lb-marks");
    if (!bar) {
      bar = document.createElement("div");
      bar.className = "lb-marks";
      box.querySelector("figure").appendChild(bar);
    }
    bar.textContent = "";
    if (!lightboxPk || !marks[lightboxPk]) return;
    bar.appendChild(marksBar(lightboxPk, false));
    var copy = document.createElement("button");
    copy.type = "button";
    copy.dataset.copyFor = lightboxPk;
    copy.textContent = cfg.copyLabel;
    bar.appendChild(copy);
    var keys = document.createElement("button");
    keys.type = "button";
    keys.dataset.act = "keys";
    keys.textContent = "?";
    keys.title = cfg.keysLabel;
    keys.setAttribute("aria-label", cfg.keysLabel);
    bar.appendChild(keys);
  }

  document.addEventListener("lightbox:show", function (event) {
    lightboxPk = pkOf(event.detail.link) || pkOf(document.querySelector("[data-task-pk]"));
    if (lightboxPk && !marks[lightboxPk]) load([lightboxPk]).then(drawLightbox);
    else drawLightbox();
  });
  document.addEventListener("lightbox:close", function () { lightboxPk = null; });

  function lightboxOpen() {
    var box = document.getElementById("lightbox");
    return box && !box.hidden;
  }

  // Actions

  function act(action, pks, extra) {
    var data = Object.assign({ action: action, pk: pks }, extra || {});
    return post(cfg.selectionUrl, data).then(function (result) {
      Object.keys(result.marks).forEach(function (pk) {
        marks[pk] = Object.assign(marks[pk] || {}, result.marks[pk]);
        draw(pk);
      });
      return result;
    }).catch(function () { toast(cfg.refused); });
  }

  function toggleStar(pk) {
    var on = marks[pk] && marks[pk].favourite;
    return act(on ? "unfavourite" : "favourite", [pk]);
  }

  function copyPrompt(pk) {
    var text = (marks[pk] && marks[pk].prompt) || "";
    if (!text) { toast(cfg.noPrompt); return; }
    var done = function () { toast(cfg.copied); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  function openTagDialog(pks) {
    if (!rights.tag || !pks.length) return;
    dialogTargets = pks;
    var dialog = document.getElementById("tag-dialog");
    dialog.querySelector("input[name=tags]").value = "";
    suggest("");
    dialog.showModal();
  }

  function suggest(prefix) {
    fetch(cfg.tagsUrl + "?q=" + encodeURIComponent(prefix), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var list = document.getElementById("tag-names");
        list.textContent = "";
        data.tags.forEach(function (name) {
          var option = document.createElement("option");
          option.value = name;
          list.appendChild(option);
        });
      });
  }

  function openCollectDialog(pks) {
    if (!rights.collect || !pks.length) return;
    dialogTargets = pks;
    var dialog = document.getElementById("collect-dialog");
    var select = dialog.querySelector("select[name=collection]");
    fetch(cfg.collectionsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        select.textContent = "";
        select.appendChild(document.createElement("option"));
        data.collections.forEach(function (c) {
          var option = document.createElement("option");
          option.value = c.pk;
          option.textContent = c.name;
          select.appendChild(option);
        });
        dialog.querySelector("input[name=new_collection]").value = "";
        dialog.showModal();
      });
  }

  document.getElementById("tag-dialog").addEventListener("close", function (event) {
    var dialog = event.target;
    var tags = dialog.querySelector("input[name=tags]").value;
    if ((dialog.returnValue === "tag" || dialog.returnValue === "untag") && tags.trim()) {
      act(dialog.returnValue, dialogTargets, { tags: tags });
    }
    dialog.returnValue = "";
  });

  document.getElementById("collect-dialog").addEventListener("close", function (event) {
    var dialog = event.target;
    if (dialog.returnValue !== "collect") return;
    dialog.returnValue = "";
    var extra = {
      collection: dialog.querySelector("select[name=collection]").value,
      new_collection: dialog.querySelector("input[name=new_collection]").value,
    };
    act("collect", dialogTargets, extra).then(function (result) {
      if (!result || !result.collection) return;
      var bar = document.getElementById("selection-bar");
      var link = bar.querySelector("a.collection-link") || document.createElement("a");
      link.className = "collection-link";
      link.href = result.collection.url;
      link.textContent = cfg.added + " " + result.collection.name;
      bar.appendChild(link);
      toast(link.textContent);
    });
  });

  document.querySelector("#tag-dialog input[name=tags]").addEventListener("input", function (e) {
    var parts = e.target.value.split(",");
    suggest(parts[parts.length - 1].trim());
  });

  function showKeys() {
    var dialog = document.getElementById("keys-dialog");
    if (!dialog.open) dialog.showModal();
  }

  // Selection

  function setSelected(pk, on) {
    if (on) selected.add(pk); else selected.delete(pk);
    var item = itemOf(pk);
    if (item) {
      item.classList.toggle("is-selected", on);
      var tick = item.querySelector("input.select-task");
      if (tick) tick.checked = on;
    }
  }

  function updateBar() {
    var bar = document.getElementById("selection-bar");
    bar.hidden = selected.size === 0;
    bar.querySelector("[data-count]").textContent = selected.size;
    var all = document.querySelector("#selection-tools input[data-act=all]");
    var pks = items().map(pkOf);
    if (all) all.checked = pks.length > 0 && pks.every(function (pk) { return selected.has(pk); });
  }

  function clickTick(pk, on, shift) {
    if (shift && lastClicked !== null) {
      var pks = items().map(pkOf);
      var a = pks.indexOf(lastClicked), b = pks.indexOf(pk);
      if (a >= 0 && b >= 0) {
        pks.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (p) { setSelected(p, on); });
      }
    }
    setSelected(pk, on);
    lastClicked = pk;
    updateBar();
  }

  function selectionQuery() {
    return Array.from(selected).map(function (pk) { return "pk=" + pk; }).join("&");
  }

  function bulk(action) {
    var pks = Array.from(selected);
    if (action === "all") {
      var on = document.querySelector("#selection-tools input[data-act=all]").checked;
      items().forEach(function (item) { setSelected(pkOf(item), on); });
      updateBar();
    } else if (action === "clear") {
      Array.from(selected).forEach(function (pk) { setSelected(pk, false); });
      updateBar();
    } else if (action === "favourite" || action === "unfavourite") {
      act(action, pks).then(function () { toast(cfg.done); });
    } else if (action === "tag") {
      openTagDialog(pks);
    } else if (action === "collect") {
      openCollectDialog(pks);
    } else if (action === "export") {
      window.location.href = cfg.exportUrl + "?" + selectionQuery();
    } else if (action === "zip") {
      window.location.href = cfg.zipUrl + "?" + selectionQuery();
    } else if (action === "keys") {
      showKeys();
    }
  }

  // Clicks (mouse, touch)

  document.addEventListener("click", function (event) {
    var el = event.target;
    if (!el.closest) return;
    var tick = el.closest("input.select-task");
    if (tick) {
      clickTick(tick.dataset.pk, tick.checked, event.shiftKey);
      return;
    }
    var star = el.closest("[data-star]");
    if (star) { toggleStar(star.dataset.star); return; }
    var tag = el.closest("[data-tag-for]");
    if (tag) { openTagDialog([tag.dataset.tagFor]); return; }
    var copy = el.closest("[data-copy-for]");
    if (copy) { copyPrompt(copy.dataset.copyFor); return; }
    var button = el.closest("[data-act]");
    if (button && button.closest("#selection-bar, #selection-tools, #lightbox")) {
      bulk(button.dataset.act);
    }
  });

  // Keys

  function focusedPk() {
    if (lightboxOpen()) return lightboxPk;
    var active = document.activeElement;
    return active && items().indexOf(active.closest && active.closest(".card, .task-row")) >= 0
      ? pkOf(active)
      : null;
  }

  function moveFocus(key) {
    var cards = items();
    if (!cards.length) return;
    var current = cards.indexOf(document.activeElement);
    if (current < 0) { cards[0].focus(); return; }
    var step = 1;
    if (key === "ArrowUp" || key === "ArrowDown") {
      // As many cards as one row of the grid holds.
      var top = cards[0].offsetTop;
      step = cards.filter(function (c) { return c.offsetTop === top; }).length || 1;
    }
    var forward = key === "ArrowRight" || key === "ArrowDown";
    var next = Math.max(0, Math.min(cards.length - 1, current + (forward ? step : -step)));
    cards[next].focus();
    cards[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, dialog")) return;
    if (document.querySelector("dialog[open]")) return;
    var key = event.key;
    var inGallery = document.body.classList.contains("page-gallery");
    var pk = focusedPk();
    if (key === "?") { showKeys(); event.preventDefault(); return; }
    if (!lightboxOpen() && inGallery && key.indexOf("Arrow") === 0) {
      moveFocus(key);
      event.preventDefault();
      return;
    }
    if (key === "Escape" && !lightboxOpen() && selected.size) { bulk("clear"); return; }
    if (!pk) return;
    if (key === "f") toggleStar(pk);
    else if (key === "t") openTagDialog([pk]);
    else if (key === "c") copyPrompt(pk);
    else if (key === "x" && !lightboxOpen()) clickTick(pk, !selected.has(pk), event.shiftKey);
    else if (key === "Enter" && !lightboxOpen()) {
      var thumb = itemOf(pk).querySelector("a[data-lightbox]");
      if (thumb) thumb.click(); else return;
    } else return;
    event.preventDefault();
  });

  // Start, and again for rows that htmx swaps in (the live poll).

  function start(scope) {
    var found = [];
    items().forEach(function (item) {
      if (scope.contains(item) || item.contains(scope)) {
        if (document.body.classList.contains("page-gallery")) item.tabIndex = 0;
        found.push(pkOf(item));
      }
    });
    var detail = scope.querySelector && scope.querySelector("[data-task-pk]");
    if (detail) found.push(detail.dataset.taskPk);
    found = found.filter(Boolean);
    found.forEach(function (pk) { if (marks[pk]) draw(pk); });
    load(found.filter(function (pk) { return !marks[pk]; }));
  }

  var tools = document.getElementById("selection-tools");
  var list = document.querySelector("table.tasks, .page-gallery .gallery");
  if (list && onListPage) {
    var anchor = list.closest(".table-wrap") || list;
    anchor.parentNode.insertBefore(tools, anchor);
    tools.hidden = false;
  }
  start(document.body);
  document.addEventListener("htmx:load", function (event) {
    if (event.target !== document.body) start(event.target);
  });
})();
