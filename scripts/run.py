"""`make run`: migrate, make an admin login, start the web app, the sync worker and,
without MJ_PROXY_URL, the built-in proxy simulator; Ctrl-C stops all of it.

Every child runs in a session (and so a process group) of its own: a terminal's Ctrl-C
reaches only this script, which then sends each child exactly one signal, waits for it a
bounded time, and kills whatever is left of the child's process group (gunicorn's
workers, the qcluster's pusher, monitor and workers). Before, the whole group got the
terminal's SIGINT and then this script's SIGTERM: a gunicorn gthread worker, told to quit
twice while a request was in flight, outlived its master (killed alone after 10 s), and
kept the port; a second signal can also deadlock the qcluster (django-q2 issue 346).
The qcluster finishes its running pass before it stops, so it gets the longest wait;
a second Ctrl-C (or SIGTERM, SIGHUP) kills everything left at once.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEB_PORT = int(os.getenv("PORT", "8000"))
SIM_PORT = int(os.getenv("MJ_SIMULATOR_PORT", "8081"))
SIM_FLAVOR = os.getenv("MJ_SIMULATOR_FLAVOR", "novicezk").strip().lower() or "novicezk"
# How the `default` source reaches each flavor of simulator: (auth header, the secret's
# prefix, the source's kind). A relay's key is sent as "Bearer sk-...".
SIM_SOURCES = {
    "novicezk": ("mj-api-secret", "", "auto"),
    "trueai": ("Authorization", "", "trueai"),
    "relay": ("Authorization", "Bearer sk-", "relay"),
    "newapi": ("Authorization", "Bearer sk-", "newapi"),
}
PASSWORD_FILE = ROOT / os.getenv("MJ_ADMIN_PASSWORD_FILE", ".admin-password")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WEB_GRACE = 5  # seconds gunicorn gives a request in flight (its --graceful-timeout)
QCLUSTER_GRACE = 120  # seconds: longer than the longest sync pass
KILL_WAIT = 10  # seconds for a killed process group to be gone


def say(text):
    """Print, even while stopping after the terminal went away (SIGHUP) or the pipe broke."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def manage(*args, **kwargs):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True, **kwargs)


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port, seconds=20, children=()):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not port_free(port):
            return True
        if any(child.proc.poll() is not None for child in children):
            return False
        time.sleep(0.2)
    return False


def ensure_admin():
    """Create the `admin` login once; its password lives in .admin-password (not in git)."""
    password = secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model\n"
        "U = get_user_model()\n"
        "import sys\n"
        "if U.objects.filter(username='admin').exists(): sys.exit(3)\n"
        f"U.objects.create_superuser('admin', 'admin@localhost', {password!r})\n"
    )
    result = subprocess.run([PY, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT)
    if result.returncode == 0:
        PASSWORD_FILE.touch(mode=0o600)
        PASSWORD_FILE.chmod(0o600)
        PASSWORD_FILE.write_text(password + "\n")
        return password, True
    if PASSWORD_FILE.exists():
        return PASSWORD_FILE.read_text().strip(), False
    return None, False


class Child:
    """A process in a session of its own, with the one signal that stops it and how long
    it may take before its whole process group is killed."""

    def __init__(self, name, args, env, stop_signal=signal.SIGTERM, grace=10):
        self.name, self.stop_signal, self.grace = name, stop_signal, grace
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)  # the session leader's pid is its group's id
        except (ProcessLookupError, PermissionError):
            pass  # nobody left in the group

    def group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C (and SIGTERM, SIGHUP) while a child is started and recorded, so none is
    started and then forgotten; a signal that came meanwhile is raised afterwards."""
    pending = []
    previous = {
        sig: signal.signal(sig, lambda sig, frame: pending.append(sig)) for sig in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        raise KeyboardInterrupt


def interrupt(sig, frame):
    raise KeyboardInterrupt


def main(children):
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "False")
    for port in (WEB_PORT,) + (() if env.get("MJ_PROXY_URL") else (SIM_PORT,)):
        if not port_free(port):
            sys.exit(
                f"port {port} is in use: stop what runs there, or set PORT / MJ_SIMULATOR_PORT"
            )

    def start(*args, **kwargs):
        with signals_held():
            children.append(Child(*args, **kwargs))
        return children[-1]

    simulate = not env.get("MJ_PROXY_URL")
    if simulate:
        if SIM_FLAVOR not in SIM_SOURCES:
            sys.exit(f"MJ_SIMULATOR_FLAVOR is {SIM_FLAVOR!r}: use one of {', '.join(SIM_SOURCES)}")
        header, prefix, kind = SIM_SOURCES[SIM_FLAVOR]
        env["MJ_PROXY_URL"] = f"http://127.0.0.1:{SIM_PORT}"
        env["MJ_API_SECRET"] = prefix + secrets.token_urlsafe(16)
        env["MJ_AUTH_HEADER"] = header
        env["MJ_PROXY_KIND"] = kind
        if SIM_FLAVOR == "newapi":
            # The relay's admin list is read with an admin's access token and user id.
            env["MJ_ADMIN_TOKEN"] = secrets.token_urlsafe(16)
            env["MJ_ADMIN_USER"] = "1"

    manage("migrate", "--no-input", "-v", "0", env=env)  # also creates the `default` source
    manage("collectstatic", "--no-input", "-v", "0", env=env)
    password, new = ensure_admin()

    if simulate:
        hook_path = manage(
            "hook_url", "--source", "default", env=env, capture_output=True, text=True
        ).stdout.splitlines()[-1]
        command = [PY, "manage.py", "mj_simulator", "--port", str(SIM_PORT)]
        # "--secret=": a secret may begin with "-", which argparse would take for an option.
        command += [f"--secret={env['MJ_API_SECRET']}", "--flavor", SIM_FLAVOR]
        command += ["--tasks", os.getenv("MJ_SIMULATOR_TASKS", "300")]
        if SIM_FLAVOR == "newapi":
            command += [f"--admin-token={env['MJ_ADMIN_TOKEN']}"]  # it pushes no hooks
        else:
            command += ["--notify-hook", f"http://127.0.0.1:{WEB_PORT}{hook_path}"]
        sim = start("simulator", command, env, grace=5)
        if not wait_for_port(SIM_PORT, children=[sim]):
            sys.exit("the proxy simulator did not start")

    web = start(
        "web",
        [PY, "-m", "gunicorn", "mjsite.wsgi", "-b", f"127.0.0.1:{WEB_PORT}"]
        # No access log: hook URLs carry their token.
        + ["--workers", "2", "--threads", "4", "--no-control-socket"]
        + ["--graceful-timeout", str(WEB_GRACE)],
        env,
        grace=WEB_GRACE + 5,  # gunicorn kills its own late workers after WEB_GRACE
    )
    start("sync worker", [PY, "manage.py", "qcluster"], env, grace=QCLUSTER_GRACE)
    # A first full pass now, so the mirror is filled before the scheduler's first tick.
    # SIGINT, as Ctrl-C would: the pass gives its source's lease back on the way out.
    start(
        "first sync",
        [PY, "manage.py", "sync_tasks", "--full"],
        env,
        stop_signal=signal.SIGINT,
        grace=10,
    )

    wait_for_port(WEB_PORT, children=[web])
    print()
    print(f"  mjsite runs on http://127.0.0.1:{WEB_PORT}/")
    if password:
        note = "(new)" if new else f"(from {PASSWORD_FILE.name})"
        print(f"  login: admin / {password} {note}")
    else:
        print("  login: admin (new password: .venv/bin/python manage.py changepassword admin)")
    upstream = ""
    if simulate:
        upstream = f"the built-in proxy simulator ({SIM_FLAVOR})"
        if SIM_FLAVOR != "newapi":
            upstream += ", pushing changes to the notify-hook"
    print(f"  upstream: {env['MJ_PROXY_URL']} {upstream}")
    print("  Ctrl-C stops everything.")
    print()

    # Until Ctrl-C, or until a child other than the first sync ends by itself.
    while all(c.proc.poll() is None for c in children if c.name != "first sync"):
        time.sleep(0.5)
    for child in children:
        if child.name != "first sync" and child.proc.poll() is not None:
            print(f"\nthe {child.name} exited with {child.proc.returncode}")
    return 1


def stop(children):
    """One signal to each child; wait for each (bounded); kill each group's remains.
    A second Ctrl-C, SIGTERM or SIGHUP ends the waiting: everything left is killed."""
    hurry = []

    def again(sig, frame):
        hurry.append(sig)  # no print here: the signal may have come in the middle of one

    for sig in STOP_SIGNALS:
        signal.signal(sig, again)
    if not children:
        return
    say("\nstopping…")
    started = time.monotonic()
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(child.stop_signal)  # exactly once
    told = hurried = False
    waiting = list(children)
    while waiting:
        now = time.monotonic()
        if hurry and not hurried:
            say("stopping now: killing what is left")
            hurried = True
        for child in list(waiting):
            ended = child.proc.poll() is not None
            if not (ended or hurry or now > started + child.grace):
                continue
            # Its leader is gone, or its time is up: nothing left in its group lives on.
            waiting.remove(child)
            if not child.group_alive():
                continue
            child.signal_group(signal.SIGKILL)
            if ended:
                say(f"killed what the {child.name} left behind")
            elif hurry:
                say(f"killed the {child.name}")
            else:
                say(f"the {child.name} did not stop in {child.grace} s: killed")
        if not told and waiting and now > started + 3:
            names = " and the ".join(c.name for c in waiting)
            say(f"waiting for the {names} to finish; Ctrl-C again stops it now")
            told = True
        time.sleep(0.1)
    # SIGKILL is delivered, but a process takes a moment to die and free its port.
    deadline = time.monotonic() + KILL_WAIT
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        while child.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # the banner shows up at once, also in a pipe
    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)
    children = []
    status = 0
    try:
        status = main(children)
    except KeyboardInterrupt:
        pass
    finally:
        stop(children)
    sys.exit(status)
