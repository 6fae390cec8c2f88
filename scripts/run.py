"""`make run`: migrate, make an admin login, start the web app, the sync worker and,
without MJ_PROXY_URL, the built-in proxy simulator; Ctrl-C stops all of it.

The qcluster runs in its own session and gets exactly one SIGTERM on exit: a
second signal can deadlock it (django-q2 issue 346), and it finishes its running
pass before it stops, so we wait for it before killing what is left of it.
"""

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
PASSWORD_FILE = ROOT / ".admin-password"
QCLUSTER_GRACE = 120  # seconds: longer than the longest sync pass


def manage(*args, **kwargs):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True, **kwargs)


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for_port(port, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not port_free(port):
            return True
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
        PASSWORD_FILE.write_text(password + "\n")
        PASSWORD_FILE.chmod(0o600)
        return password, True
    if PASSWORD_FILE.exists():
        return PASSWORD_FILE.read_text().strip(), False
    return None, False


def main():
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "False")
    for port in (WEB_PORT,) + (() if env.get("MJ_PROXY_URL") else (SIM_PORT,)):
        if not port_free(port):
            sys.exit(
                f"port {port} is in use: stop what runs there, or set PORT / MJ_SIMULATOR_PORT"
            )

    children = []
    simulate = not env.get("MJ_PROXY_URL")
    if simulate:
        env["MJ_PROXY_URL"] = f"http://127.0.0.1:{SIM_PORT}"
        env["MJ_API_SECRET"] = secrets.token_urlsafe(16)
        env["MJ_AUTH_HEADER"] = "mj-api-secret"

    manage("migrate", "--no-input", "-v", "0", env=env)  # also creates the `default` source
    manage("collectstatic", "--no-input", "-v", "0", env=env)
    password, new = ensure_admin()

    if simulate:
        hook_path = manage(
            "hook_url", "--source", "default", env=env, capture_output=True, text=True
        ).stdout.splitlines()[-1]
        sim = subprocess.Popen(
            [PY, "manage.py", "mj_simulator", "--port", str(SIM_PORT)]
            + ["--secret", env["MJ_API_SECRET"], "--flavor", "novicezk"]
            + ["--tasks", os.getenv("MJ_SIMULATOR_TASKS", "300")]
            + ["--notify-hook", f"http://127.0.0.1:{WEB_PORT}{hook_path}"],
            cwd=ROOT,
            env=env,
        )
        children.append(("simulator", sim))
        if not wait_for_port(SIM_PORT):
            stop(children, None)
            sys.exit("the proxy simulator did not start")

    web = subprocess.Popen(
        [PY, "-m", "gunicorn", "mjsite.wsgi", "-b", f"127.0.0.1:{WEB_PORT}"]
        # No access log: hook URLs carry their token.
        + ["--workers", "2", "--threads", "4", "--no-control-socket"],
        cwd=ROOT,
        env=env,
    )
    children.append(("web", web))
    qcluster = subprocess.Popen(
        [PY, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True
    )
    # A first full pass now, so the mirror is filled before the scheduler's first tick.
    first = subprocess.Popen([PY, "manage.py", "sync_tasks", "--full"], cwd=ROOT, env=env)
    children.append(("first sync", first))

    wait_for_port(WEB_PORT)
    print()
    print(f"  mjsite runs on http://127.0.0.1:{WEB_PORT}/")
    if password:
        note = "(new)" if new else f"(from {PASSWORD_FILE.name})"
        print(f"  login: admin / {password} {note}")
    else:
        print("  login: admin (new password: .venv/bin/python manage.py changepassword admin)")
    upstream = (
        "the built-in proxy simulator, pushing changes to the notify-hook" if simulate else ""
    )
    print(f"  upstream: {env['MJ_PROXY_URL']} {upstream}")
    print("  Ctrl-C stops everything.")
    print()

    try:
        while all(p.poll() is None for name, p in children if name != "first sync"):
            if qcluster.poll() is not None:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop(children, qcluster)


def stop(children, qcluster):
    print("\nstopping…")
    if qcluster is not None and qcluster.poll() is None:
        qcluster.send_signal(signal.SIGTERM)  # exactly once
    for _, proc in children:
        if proc.poll() is None:
            proc.terminate()
    for _, proc in children:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if qcluster is not None:
        try:
            qcluster.wait(timeout=QCLUSTER_GRACE)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(qcluster.pid, signal.SIGKILL)  # its pusher and monitor too
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
