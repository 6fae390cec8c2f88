"""Hostile proxy records in a real browser, under the site's Content-Security-Policy.

Every payload of tests/xss_payloads.py is stored through the sync's own write path
(`sync.ingest`) in every text field a proxy sends, and in `imageUrl`. Headless Chromium
(Debian's, as in test_browser.py) then opens every page that shows them and checks that
nothing ran: no dialog, no marker, no payload on the console, no CSP violation, no
uncaught error, and no javascript:/data:/vbscript: URL, event-handler attribute, frame
or foreign script anywhere in the DOM. Pages show many payloads at once, so the whole
corpus takes a few dozen page loads. Nothing leaves the machine: every request to
another origin than the live server is aborted.
"""

import os
import re
import time
from urllib.parse import quote, urlencode

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tasks.ingest.sync import ingest
from tasks.models import InvalidRecord, Source, SyncRun, Task
from tests.xss_payloads import FIRED, IMAGE_URLS, MARKER, PAYLOADS, SCHEMES, groups, short

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM between browser steps

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-xss-browser-123"
GROUP_SIZE = 8  # payloads per field of a grouped task

# Runs in every frame before the page's own scripts (injected by the browser, so the
# CSP does not apply to it): records CSP violations where the checks can read them, and
# counts htmx's finished swaps, so a check after a live refresh waits for the new rows.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ""}`);
});
window.__swaps = 0;
document.addEventListener("htmx:afterSettle", () => { window.__swaps += 1; });
"""

# One look at the page: the markers, the CSP violations, the text, and everything in the
# DOM that would run or navigate to code, had markup got through.
INSPECT = r"""
([marker, schemes]) => {
  const bad = [];
  const urlAttrs = new Set(["href", "src", "action", "formaction", "data", "poster",
    "background", "srcset", "xlink:href", "ping", "cite", "codebase", "lowsrc", "dynsrc",
    "manifest", "icon", "content"]);
  const banned = new Set(["IFRAME", "FRAME", "FRAMESET", "OBJECT", "EMBED", "APPLET", "BASE"]);
  for (const el of document.querySelectorAll("*")) {
    const tag = el.tagName.toUpperCase();
    if (banned.has(tag)) bad.push(`<${tag}>`);
    if (tag === "SCRIPT") {
      const src = el.getAttribute("src") || "";
      if (!src.startsWith("/") || src.startsWith("//")) {
        bad.push(`script ${el.outerHTML.slice(0, 80)}`);
      }
    }
    if (tag === "META" && /refresh/i.test(el.getAttribute("http-equiv") || "")) {
      bad.push("meta refresh");
    }
    for (const name of el.getAttributeNames()) {
      const lower = name.toLowerCase();
      if (lower.startsWith("on") || lower.startsWith("hx-on") || lower === "srcdoc") {
        bad.push(`${tag} ${name}=${el.getAttribute(name).slice(0, 60)}`);
      }
      if (urlAttrs.has(lower)) {
        // What a browser would make of it: whitespace and control characters dropped.
        const value = el.getAttribute(name)
          .replace(/[\u0000-\u0020\u007f-\u00a0]/g, "").toLowerCase();
        const refresh = (s) => lower === "content" && value.includes("url=" + s);
        if (schemes.some((s) => value.startsWith(s) || refresh(s))) {
          bad.push(`${tag} ${name}=${el.getAttribute(name).slice(0, 60)}`);
        }
      }
    }
  }
  return {
    marker: String(window[marker]),
    title: document.title,
    violations: window.__cspViolations || [],
    bad: bad,
    text: document.body ? document.body.innerText : "",
  };
}
"""


class Watch:
    """One logged-in page and everything suspicious it reported."""

    def __init__(self, page, base):
        self.page, self.base = page, base
        self.dialogs, self.console, self.errors = [], [], []
        page.on("dialog", self.on_dialog)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def on_dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, path, shows_payloads=True):
        response = self.page.goto(self.base + path)
        assert response is not None and response.status < 400, (path, response and response.status)
        self.check(path, shows_payloads)
        return response

    def after_live_refresh(self, path):
        """Wait for a live refresh (the answer from `path`, swapped in and settled), then
        check the page as it is now."""
        page = self.page
        swaps = page.evaluate("window.__swaps")
        with page.expect_response(lambda r: path in r.url, timeout=30_000) as polled:
            pass
        assert polled.value.status == 200
        page.wait_for_function("n => window.__swaps > n", arg=swaps, timeout=30_000)
        self.check(f"after a live refresh from {path}")

    def check(self, where, shows_payloads=True):
        page = self.page
        # No frame at all (a payload's <iframe> would be one); then the page itself.
        assert page.frames == [page.main_frame], (where, [f.url for f in page.frames])
        seen = page.evaluate(INSPECT, [MARKER, list(SCHEMES)])
        assert seen["marker"] == "undefined", (where, "marker set")
        assert seen["title"] != "XSS", (where, "title set")
        assert seen["violations"] == [], (where, seen["violations"])
        assert seen["bad"] == [], (where, seen["bad"])
        assert self.dialogs == [], (where, self.dialogs)
        suspicious = [
            m
            for m in self.console
            if FIRED in m or MARKER in m or "Content Security Policy" in m or "XSS" in m
        ]
        assert suspicious == [], (where, suspicious)
        assert self.errors == [], (where, self.errors)
        if shows_payloads:
            # Not vacuous: the payloads are on the page, as text.
            text = squeeze(seen["text"])
            expected = (MARKER, "XSS") if shows_payloads is True else (squeeze(shows_payloads),)
            assert any(e in text for e in expected), (where, "payload not shown as text", expected)
        self.console.clear()


def squeeze(text):
    # As stored (NUL becomes U+FFFD) and without the whitespace rendering changes.
    return re.sub(r"\s", "", text.replace("\x00", "\ufffd"))


@pytest.fixture
def watch(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("boss", "", PASSWORD)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    context.add_init_script(WATCH_VIOLATIONS)

    # Proxy image links and anything a payload points at: aborted in the browser.
    elsewhere = re.compile(rf"^(?!{re.escape(live_server.url)}/)")
    context.route(elsewhere, lambda route: route.abort())
    page = context.new_page()
    w = Watch(page, live_server.url)
    w.open(reverse("login"), shows_payloads=False)
    page.fill("#id_username", "boss")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    w.check("after login", shows_payloads=False)
    yield w
    context.close()


# The poisoned mirror


def ms_ago(minutes):
    return int(time.time() * 1000) - minutes * 60_000


def single_record(n, payload):
    """One payload in every field (cut to fit where a column has a limit)."""
    status = "FAILURE" if n % 3 == 0 else short(payload)  # failures feed the overview
    return {
        "id": f"17000{n:011d}",
        "properties": {
            "finalPrompt": payload,
            "notifyHook": payload,
            payload[:100]: payload,
        },
        "action": short(payload),
        "status": status,
        "prompt": payload,
        "promptEn": payload,
        "description": payload,
        "state": payload,
        "submitTime": ms_ago(n + 1),
        "startTime": ms_ago(n),
        "finishTime": ms_ago(n) + 30_000 if status == "FAILURE" else None,
        "imageUrl": IMAGE_URLS[n % len(IMAGE_URLS)],
        "progress": short(payload),
        "failReason": payload,
        "buttons": [{"customId": payload, "emoji": payload, "label": payload, "style": 2}],
        payload[:100]: payload,  # a field mjsite does not know: "Other fields"
    }


def grouped_records(parent_ids):
    """Many payloads per field: field f of task j holds group (j + f), so every group
    lands in every field somewhere; each task's detail page shows the whole corpus."""
    texts = groups(PAYLOADS, GROUP_SIZE)
    k = len(texts)
    records = []
    for j in range(k):
        text = [texts[(j + f) % k] for f in range(11)]
        records.append(
            {
                "id": f"17100{j:011d}",
                "action": short(text[0]),
                "status": short(text[1]),
                "prompt": text[2],
                "promptEn": text[3],
                # "/up <id> U1 ...": the detail pages link parent and child.
                "description": f"/up {parent_ids[j]} U1 {text[4]}",
                "state": text[5],
                "failReason": text[6],
                "submitTime": ms_ago(200 + j),
                "imageUrl": IMAGE_URLS[(10 + j) % len(IMAGE_URLS)],
                "progress": "40%",
                "properties": {"finalPrompt": text[7], "messageId": text[8][:40]},
                "buttons": [{"customId": text[9], "label": text[10], "emoji": text[0]}],
                "extra": text[9],
            }
        )
    return records


@pytest.fixture
def poisoned():
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9", secret="s3cret")
    singles = [single_record(n, p) for n, p in enumerate(PAYLOADS)]
    counts, _ = ingest(source, singles)
    assert counts.created == len(PAYLOADS) and counts.invalid == 0
    grouped = grouped_records([r["id"] for r in singles])
    counts, _ = ingest(source, grouped)
    assert counts.created == len(grouped) and counts.invalid == 0
    # Hostile ids are refused, and kept (with the id in the reason) as invalid records.
    counts, _ = ingest(source, [{"id": p, "prompt": p} for p in PAYLOADS[:20]])
    assert counts.invalid == 20
    SyncRun.objects.create(source=source, kind="full", outcome="failed", error=PAYLOADS[0])
    return {"singles": singles, "grouped": grouped, "source": source}


def test_the_task_list_gallery_overview_and_live_rows_run_no_payload(watch, poisoned):
    watch.open("/")
    watch.open(reverse("tasks:list"))
    # The unknown statuses are running tasks: the page polls their rows with htmx.
    watch.after_live_refresh("/tasks/live/")
    watch.page.click("a.thumb[data-lightbox]")  # captions are payloads: text only
    watch.page.locator("#lightbox").wait_for(state="visible")
    watch.check("lightbox")
    watch.page.keyboard.press("Escape")
    with watch.page.expect_navigation():
        watch.page.click("a[rel=next]")
    assert "cursor=" in watch.page.url
    watch.check("list, page 2")
    watch.open(reverse("tasks:gallery"))
    watch.open(reverse("tasks:gallery") + "?" + urlencode({"sort": "finished"}))
    pks = Task.objects.values_list("pk", flat=True)[:100]
    query = urlencode([("view", "gallery"), *[("pk", pk) for pk in pks]])
    watch.open(reverse("tasks:list_live") + "?" + query)


@pytest.mark.slow
def test_search_and_filter_parameters_reflect_no_payload(watch, poisoned):
    texts = groups(PAYLOADS, GROUP_SIZE)
    for n, text in enumerate(texts):
        params = {
            "q": text,
            "status": short(PAYLOADS[n]),
            "action": PAYLOADS[n + 1][:64],
            "source": PAYLOADS[n + 2],
            "range": PAYLOADS[n + 3],
            "sort": PAYLOADS[n + 4],
            "submitted_after": PAYLOADS[n + 5],
            "cursor": PAYLOADS[n + 6],
        }
        page = reverse("tasks:gallery") if n % 2 else reverse("tasks:list")
        watch.open(page + "?" + urlencode(params))
    # One payload alone in q, the whole value of the search box: each that could break
    # out of the attribute.
    for payload in [p for p in PAYLOADS if '"' in p or "'" in p]:
        watch.open(reverse("tasks:list") + "?" + urlencode({"q": payload}), shows_payloads=False)
        assert watch.page.input_value("input[name=q]") == payload.replace("\x00", "\ufffd")


@pytest.mark.slow
def test_every_poisoned_tasks_detail_page_runs_no_payload(watch, poisoned):
    for record in poisoned["grouped"]:
        watch.open(reverse("tasks:detail", args=[record["id"]]))
    for record in poisoned["singles"]:
        watch.open(reverse("tasks:detail", args=[record["id"]]), shows_payloads=record["prompt"])
    assert watch.page.locator("section#live[hx-trigger]").count() == 1  # a running task
    watch.after_live_refresh("/live/")


@pytest.mark.slow
def test_the_admin_changelists_and_change_pages_run_no_payload(watch, poisoned):
    watch.open(reverse("admin:tasks_task_changelist"))
    watch.open(reverse("admin:tasks_task_changelist") + "?p=1", shows_payloads=False)
    for payload in PAYLOADS[::8]:
        query = urlencode({"q": payload, "status": payload[:64], "action": payload[:64]})
        watch.open(reverse("admin:tasks_task_changelist") + "?" + query, shows_payloads=False)
    for pk in Task.objects.filter(task_id__startswith="17100").values_list("pk", flat=True):
        watch.open(reverse("admin:tasks_task_change", args=[pk]))
    watch.open(reverse("admin:tasks_invalidrecord_changelist"))
    for pk in InvalidRecord.objects.values_list("pk", flat=True)[:5]:
        watch.open(reverse("admin:tasks_invalidrecord_change", args=[pk]))
    watch.open(reverse("admin:tasks_syncrun_changelist"), shows_payloads=False)
    run = SyncRun.objects.get(outcome="failed")
    watch.open(reverse("admin:tasks_syncrun_change", args=[run.pk]))


def test_the_mirror_api_shown_in_the_browser_runs_no_payload(watch, poisoned):
    watch.open(reverse("api:list") + "?limit=1000")
    watch.open(reverse("api:queue"), shows_payloads=False)
    for record in poisoned["grouped"][:3]:
        watch.open(reverse("api:fetch", args=[record["id"]]))
    for payload in PAYLOADS[:30]:
        # Unknown ids and paths come back in the JSON error: as JSON, not HTML.
        path = quote(payload.replace("\x00", ""), safe="")
        response = watch.page.goto(f"{watch.base}/mj/task/{path}/fetch")
        assert response.status in (404,), payload
        assert response.headers["content-type"] == "application/json"
        watch.check(f"api 404 for {payload!r}", shows_payloads=False)


# The site and the admin work under the policy


def test_the_pages_and_the_admin_work_under_the_csp(watch, live_server):
    source = Source.objects.create(name="main", base_url="http://127.0.0.1:9")
    running = {
        "id": "1700000000000001",
        "action": "IMAGINE",
        "status": "IN_PROGRESS",
        "prompt": "黄昏时的灯塔",
        "submitTime": ms_ago(3),
        "startTime": ms_ago(2),
        "progress": "15%",
        "imageUrl": "http://127.0.0.1:9/preview.png",
    }
    ingest(source, [running, {**running, "id": "1700000000000002", "status": "SUCCESS"}])
    SyncRun.objects.create(source=source, kind="light", outcome="ok")
    task = Task.objects.get(task_id="1700000000000001")
    pages = [
        "/",
        reverse("tasks:list"),
        reverse("tasks:gallery"),
        task.get_absolute_url(),
        reverse("admin:index"),
        reverse("admin:tasks_task_changelist"),
        reverse("admin:tasks_task_change", args=[task.pk]),
        reverse("admin:tasks_source_changelist"),
        reverse("admin:tasks_source_change", args=[source.pk]),
        reverse("admin:tasks_source_add"),
        reverse("admin:tasks_syncrun_changelist"),
        reverse("admin:auth_user_changelist"),
    ]
    page = watch.page
    for url in pages:
        watch.open(url, shows_payloads=False)
        assert page.evaluate("document.querySelectorAll('style').length") == 0, url
    # The admin's own scripts run: the action bar counts a ticked row.
    watch.open(reverse("admin:tasks_task_changelist"), shows_payloads=False)
    page.check("input.action-select >> nth=0")
    expect(page.locator(".action-counter")).to_have_text(re.compile(r"\b1 of\b"))
    watch.check("admin actions", shows_payloads=False)

    # htmx runs under the policy: the running row turns SUCCESS without a reload.
    watch.open(reverse("tasks:list"), shows_payloads=False)
    assert page.evaluate("typeof htmx") == "object"
    page.evaluate("window.notReloaded = true")
    row = page.locator(f"#task-{task.pk}")
    assert row.locator(".badge").inner_text() == "IN_PROGRESS"
    ingest(source, [{**running, "status": "SUCCESS", "progress": "100%"}])
    page.wait_for_function(
        "id => document.querySelector(`#task-${id} .badge`).textContent === 'SUCCESS'",
        arg=task.pk,
        timeout=10_000,
    )
    assert page.evaluate("window.notReloaded") is True
    watch.check("list after htmx", shows_payloads=False)
