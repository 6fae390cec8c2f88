"""A ZIP of archived originals streams with flat memory (tasks/curation/zips.py).

    .venv/bin/python bench/bench_zip.py [--tasks 500] [--kb 400]

Stores `--tasks` archived originals of `--kb` KB each in a temporary SQLite database and
MEDIA_ROOT, downloads the ZIP of all of them through Django's test client (the view, the
streaming response, storage reads), writes it to a file and checks it; then the same for
a tenth as many. Memory is the peak of Python's allocations while the body is read
(tracemalloc) and the process's peak RSS growth: flat means the big ZIP costs what the
small one does. Prints a line per run, then the figures as JSON on the last line.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(workdir):
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'zip.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_tasks(count, kb):
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tasks.models import ImageState, Source, Task

    source, _ = Source.objects.get_or_create(name="bench", base_url="http://127.0.0.1:9")
    start = Task.objects.count()
    rows = []
    for n in range(start, start + count):
        data = os.urandom(kb * 1024)  # incompressible, as images are
        name = default_storage.save(f"images/{n % 256:02x}/{n:062x}.png", ContentFile(data))
        rows.append(
            Task(
                source=source, task_id=f"{1700000000000000 + n}", status="SUCCESS",
                raw="{}", raw_hash="", image_file=name, image_bytes=len(data),
                image_state=ImageState.ARCHIVED,
            )
        )  # fmt: skip
    made = Task.objects.bulk_create(rows)
    user = User.objects.filter(username="bench").first() or User.objects.create_user("bench")
    return user, [t.pk for t in made]


def download(user, pks, path):
    from django.conf import settings
    from django.test import Client

    settings.MJ_ZIP_MAX_MB = 100_000
    settings.ALLOWED_HOSTS = ["testserver"]
    client = Client()
    client.force_login(user)
    query = "&".join(f"pk={pk}" for pk in pks)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/curation/download.zip?{query}")
    assert response.status_code == 200 and response.streaming, response.status_code
    size = 0
    with open(path, "wb") as out:
        for chunk in response.streaming_content:
            out.write(chunk)
            size += len(chunk)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == len(pks) and archive.testzip() is None
    return {
        "files": len(pks),
        "zip_mb": round(size / 2**20, 1),
        "seconds": round(seconds, 2),
        "python_peak_mb": round(peak / 2**20, 2),
        "rss_growth_mb": round(rss_growth / 1024, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--kb", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        setup(workdir)
        user, pks = make_tasks(args.tasks, args.kb)
        small = download(user, pks[: max(1, args.tasks // 10)], workdir / "small.zip")
        print(f"zip of {small['files']} originals: {json.dumps(small)}")
        big = download(user, pks, workdir / "big.zip")
        print(f"zip of {big['files']} originals: {json.dumps(big)}")
    figures = {
        "zip": {
            "small": small,
            "big": big,
            "peak_ratio": round(big["python_peak_mb"] / max(small["python_peak_mb"], 0.01), 2),
        }
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
