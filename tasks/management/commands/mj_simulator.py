import signal
import threading

from django.core.management.base import BaseCommand

FLAVORS = ("novicezk", "trueai", "relay", "newapi")


class Command(BaseCommand):
    help = "Run the built-in Midjourney proxy simulator until Ctrl-C or SIGTERM."
    requires_system_checks = []  # needs no database or app state: start even on a bare clone

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
        parser.add_argument("--secret", default="", help="required API secret (empty: none)")
        parser.add_argument("--tasks", type=int, default=100, help="historical tasks to preload")
        parser.add_argument("--flavor", choices=FLAVORS, default="novicezk")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--image-ttl", type=int, default=86400, help="seconds an image lives")
        parser.add_argument(
            "--new-task-every", type=float, default=10, help="seconds between new tasks (0: none)"
        )
        parser.add_argument("--speed", type=float, default=1.0, help="lifecycle speed factor")
        parser.add_argument("--notify-hook", default=None, help="URL to POST task changes to")
        parser.add_argument(
            "--newapi-envelope",
            choices=("new", "old"),
            default="new",
            help="newapi flavor: /api/mj/'s answer since mid-2025 (data.items) or before (data)",
        )
        parser.add_argument(
            "--admin-token",
            default="admin",
            help="trueai flavor: the admin token (accounts); newapi flavor: the admin's access "
            "token for /api/mj/ (with New-Api-User: 1)",
        )
        parser.add_argument(
            "--disable-account-after",
            type=float,
            default=None,
            help="seconds after which the first Discord account is disabled",
        )
        parser.add_argument(
            "--exhaust-account-after",
            type=float,
            default=None,
            help="seconds after which the second account's fast time runs out (trueai)",
        )
        parser.add_argument(
            "--failure-rate",
            type=float,
            default=None,
            help="share (0 to 1) of new random tasks that fail: a spike for the alert rules",
        )

        parser.add_argument(
            "--record-size",
            choices=("full", "small"),
            default="full",
            help="small: records without buttons (about 1 KB each), for the sync benchmark",
        )

    def handle(self, *args, **opts):
        from tasks.simulator import Simulator

        # Handlers first: a signal right after the URL is printed must still stop cleanly.
        # The main thread waits in short slices so they run promptly.
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())

        sim = Simulator(
            flavor=opts["flavor"],
            secret=opts["secret"],
            tasks=opts["tasks"],
            seed=opts["seed"],
            image_ttl=opts["image_ttl"],
            new_task_every=opts["new_task_every"] or None,
            notify_hook=opts["notify_hook"],
            speed=opts["speed"],
            newapi_envelope=opts["newapi_envelope"],
            admin_token=opts["admin_token"],
            disable_account_after=opts["disable_account_after"],
            exhaust_account_after=opts["exhaust_account_after"],
            record_size=opts["record_size"],
        )
        sim.failure_rate = opts["failure_rate"]
        sim.start(host=opts["host"], port=opts["port"])
        auth = "secret required" if opts["secret"] else "no auth"
        self.stdout.write(f"Midjourney proxy simulator ({opts['flavor']}, {auth}) on {sim.url}")
        self.stdout.write(f"  {len(sim.store)} tasks, e.g. {sim.url}/mj/task/list; Ctrl-C to stop")
        if opts["flavor"] == "newapi":
            self.stdout.write(
                f"  admin list: {sim.url}/api/mj/ with Authorization: Bearer <admin token> "
                "and New-Api-User: 1"
            )
        self.stdout.flush()
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            sim.stop()
            self.stdout.write("simulator stopped")
