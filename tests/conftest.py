import json
import os
import shutil
from pathlib import Path

import pytest

from tasks.models import Source, Task
from tasks.simulator import ManualClock, Simulator

FIXTURES = Path(__file__).parent / "fixtures"


def ci_flag(value):
    """Whether a CI variable's value says "this is CI": any value but empty, 0 or false
    (GitHub and GitLab set CI=true, others CI=1 or CI=yes; CI=0 turns it off)."""
    return (value or "").strip().lower() not in ("", "0", "false")


# Under CI a missing tool or service (Chromium, nginx, Redis, ...) fails its tests instead
# of skipping them. The one definition: tests import IN_CI from here.
IN_CI = ci_flag(os.getenv("CI"))


def load_fixture(name):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def empty_cache(settings):
    # The overview's figures are cached; a test must not see the last test's. The cache
    # is the process's own, never a Redis that REDIS_URL may name (others use it too).
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def start_sim(clock):
    """Start a simulator on a free localhost port; stopped after the test."""
    started = []

    def start(flavor="novicezk", tasks=0, **kwargs):
        kwargs.setdefault("clock", clock)
        secret = "sk-s3cret" if flavor == "relay" else "s3cret"
        sim = Simulator(flavor=flavor, secret=secret, tasks=tasks, seed=7, **kwargs)
        sim.start(host="127.0.0.1", port=0)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def make_source(db):
    def make(sim, name=None, **fields):
        header, value = {
            "novicezk": ("mj-api-secret", sim.secret),
            "trueai": ("Authorization", sim.secret),
            "relay": ("Authorization", f"Bearer {sim.secret}"),
        }[sim.flavor.name]
        defaults = {"base_url": sim.url, "auth_header": header, "secret": value}
        defaults.update(fields)
        return Source.objects.create(name=name or sim.flavor.name, **defaults)

    return make


@pytest.fixture
def fault_server():
    from tests.faultserver import FaultServer

    server = FaultServer().start()
    yield server
    server.stop()


def make_task(source, **overrides):
    """A stored task built from a minimal record, for tests that need rows fast."""
    from tasks.ingest.records import normalise

    record = {
        "id": overrides.pop("task_id", "1700000000000001"),
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": "a cat",
        "submitTime": 1700000000000,
        "progress": "100%",
    }
    record.update(overrides.pop("record", {}))
    rec = normalise(record)
    fields = {name: getattr(rec, name) for name in ("task_id", "action", "status", "prompt")}
    fields.update(
        progress=rec.progress,
        progress_pct=rec.progress_pct,
        submitted=rec.submitted,
        raw=rec.raw,
        raw_hash=rec.raw_hash,
    )
    fields.update(overrides)
    return Task.objects.create(source=source, **fields)


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Debian's Chromium, driven by Playwright (never its own browser download); without the
# background-networking flags it keeps trying to reach the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; skipped loudly where there is none, a failure under CI (IN_CI)."""
    path = chromium_path()
    if not path:
        message = "NO CHROMIUM FOUND: browser tests not run (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
