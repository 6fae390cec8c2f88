"""How fast the image archive copies, and how much memory a pass takes.

    .venv/bin/python bench/bench_archive.py [--tasks 500] [--large 120]

(`make bench` runs it with --tasks 300 --large 24: about a minute.) Prints a line per
run, then the figures as one JSON object on the last line (bench/run.py reads it).

Two workloads, each archived by a fresh process (so its peak RSS is the pass's own):
- "simulator": tasks synced from the built-in simulator in another process, its 512 px
  PNGs at Discord-shaped links, the whole path a real deployment runs;
- "2048px": Midjourney-sized 2048 x 2048 PNGs (~7 MB each) from a plain file server,
  where decoding and thumbnailing cost more than the network.
Everything runs on localhost, in a temporary SQLite database and MEDIA_ROOT.
"""

import argparse
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_simulator(tasks, conn):
    from tasks.simulator import Simulator

    # Links that outlive the 30-day history, so every image is there to copy.
    sim = Simulator(tasks=tasks, seed=11, secret="", image_ttl=40 * 86400)
    sim.start()
    conn.send(sim.url)
    conn.recv()  # until the parent says stop
    sim.stop()


def large_pngs(count, side=2048):
    from PIL import Image, ImageDraw, ImageFilter

    images = []
    for n in range(count):
        noise = Image.effect_noise((side // 4, side // 4), 40 + n).resize((side, side))
        img = Image.merge("RGB", [noise, noise.rotate(90), noise.rotate(180)])
        draw = ImageDraw.Draw(img)
        x, y = n * 37 % (side // 2), n * 11 % (side // 2)
        draw.ellipse((x, y, x + side // 2, y + side // 3), fill=(n % 256, 90, 200))
        img = img.filter(ImageFilter.SMOOTH)
        out = io.BytesIO()
        img.save(out, "PNG")
        images.append(out.getvalue())
    return images


def run_file_server(count, conn):
    images = large_pngs(count)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, *args):
            pass

        def do_GET(self):
            n = int(self.path.strip("/").split(".")[0]) % len(images)
            body = images[n]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    conn.send((f"http://127.0.0.1:{server.server_address[1]}", sum(map(len, images))))
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.recv()
    server.shutdown()


def receive(conn, proc, timeout=600):
    # A helper process that dies before answering must not hang the benchmark.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.poll(1):
            return conn.recv()
        if not proc.is_alive():
            raise SystemExit(f"{proc.name} died (exit code {proc.exitcode})")
    raise SystemExit(f"{proc.name} did not answer in {timeout} s")


def child_pass(workers):
    """Runs in a fresh process: one archive pass, printed as JSON."""
    import resource

    import django

    django.setup()
    from tasks.archive.passes import archive_pass

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    counts = archive_pass(max_seconds=3600, workers=workers)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "archived": counts.archived,
                "failed": counts.failed + counts.retrying,
                "seconds": seconds,
                "rss_before_kb": before,
                "rss_peak_kb": peak,
            }
        )
    )


def measure(label, workers, env, media):
    from tasks.models import ImageState, Task

    # Every image waits again, and the storage is empty: each run copies everything.
    Task.objects.exclude(image_url="").update(
        image_state=ImageState.PENDING,
        image_next_try=None,
        image_attempts=0,
        image_file="",
        thumb_file="",
    )
    shutil.rmtree(media, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(workers)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rate = result["archived"] / result["seconds"]
    print(
        f"{label:<10} workers={workers}  {result['archived']:>5} images in "
        f"{result['seconds']:6.2f} s = {rate:7.1f} images/s   peak RSS "
        f"{result['rss_peak_kb'] / 1024:6.1f} MB (Django loaded: "
        f"{result['rss_before_kb'] / 1024:.1f} MB)  failed={result['failed']}",
        flush=True,
    )
    return {
        "workload": label,
        "workers": workers,
        "images": result["archived"],
        "failed": result["failed"],
        "seconds": round(result["seconds"], 3),
        "images_per_s": round(rate, 1),
        "peak_rss_mb": round(result["rss_peak_kb"] / 1024, 1),
        "django_rss_mb": round(result["rss_before_kb"] / 1024, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--large", type=int, default=120, help="2048 px images to copy")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_pass(args.child)

    tmp = Path(tempfile.mkdtemp(prefix="mjsite-bench-archive-"))
    media = tmp / "media"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        MEDIA_ROOT=str(media),
        DJANGO_SETTINGS_MODULE="mjsite.settings",
        LOG_LEVEL="WARNING",
        MJ_ARCHIVE_ALLOW_PRIVATE_HOSTS="",
        MJ_THUMBS_ONLY_AFTER_DAYS="0",
    )
    env.pop("MJ_PROXY_URL", None)
    os.environ.update(env)
    os.environ.pop("MJ_PROXY_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from tasks.ingest.sync import sync_source
    from tasks.models import Source, Task

    call_command("migrate", verbosity=0)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    runs = []
    try:
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        # The simulator workload
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=run_simulator, args=(args.tasks, child), daemon=True)
        proc.start()
        procs.append((proc, parent))
        sim_url = receive(parent, proc)
        source = Source.objects.create(name="sim", base_url=sim_url)
        sync_source(source, full=True)
        with_images = Task.objects.filter(source=source).exclude(image_url="").count()
        print(
            f"simulator: {args.tasks} tasks synced, {with_images} with an image (512 px PNG)",
            flush=True,
        )
        for workers in (1, 4):
            runs.append(measure("simulator", workers, env, media))

        # The 2048 px workload
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=run_file_server, args=(args.large, child), daemon=True)
        proc.start()
        procs.append((proc, parent))
        files_url, total = receive(parent, proc)
        print(
            f"2048px: {args.large} distinct PNGs, {total / args.large / 1e6:.1f} MB each on avg",
            flush=True,
        )
        Task.objects.all().delete()
        big = Source.objects.create(name="files", base_url=files_url)
        now = timezone.now()
        Task.objects.bulk_create(
            Task(
                source=big,
                task_id=f"{n:016d}",
                status="SUCCESS",
                raw="{}",
                raw_hash="",
                image_url=f"{files_url}/{n}.png",
                submitted=now,
                image_state="pending",
            )
            for n in range(args.large)
        )
        for workers in (1, 2, 4):
            runs.append(measure("2048px", workers, env, media))
    finally:
        for proc, conn in procs:
            if proc.is_alive():
                conn.send("stop")
                proc.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"archive": runs}))


if __name__ == "__main__":
    main()
