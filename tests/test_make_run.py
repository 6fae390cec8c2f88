"""`make run` (scripts/run.py) end to end, as a developer uses it: start it in a process
group of its own, as a terminal does; use the site; press Ctrl-C (SIGINT to the whole
group); then nothing it started may be left, and its ports must be free for the next run.

Each run gets free ports, a temporary SQLite database, media directory and admin password
file, so it never meets a developer's own `make run`, db.sqlite3 or .admin-password.
Processes are followed through /proc: every descendant of scripts/run.py, and every process
in a session or group one of them led, with its start time so a reused pid is not taken
for one of ours.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
STOP_SECONDS = 30  # from Ctrl-C to nothing left and the ports free
START_SECONDS = 120  # a loaded CI machine migrates a fresh database slowly

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    """Nobody answers on the port, and a server could bind it (as gunicorn would)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def processes():
    """Every process now: pid -> (ppid, pgid, sid, state, start time)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, pgid, sid = int(fields[1]), int(fields[2]), int(fields[3])
        found[int(entry.name)] = (ppid, pgid, sid, fields[0], int(fields[19]))
    return found


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def wait_until(condition, seconds, message):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        time.sleep(0.1)


class MakeRun:
    """scripts/run.py in a new session, its output in a file, its process tree followed."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.web_port = self.sim_port = free_port()
        while self.sim_port == self.web_port:
            self.sim_port = free_port()
        self.password_file = tmp_path / "admin-password"
        self.database = tmp_path / "db.sqlite3"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "MJ_", "LOG_", "Q_")) and k != "REDIS_URL"
        }
        env.update(
            DATABASE_URL=f"sqlite:///{self.database}",
            MEDIA_ROOT=str(tmp_path / "media"),
            PORT=str(self.web_port),
            MJ_SIMULATOR_PORT=str(self.sim_port),
            MJ_ADMIN_PASSWORD_FILE=str(self.password_file),
            MJ_SIMULATOR_TASKS="30",
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.proc = None
        self.seen = {}  # (pid, start time) -> command line
        self.sessions = set()  # sessions and process groups of our processes
        self.holds = []  # client sockets of requests still in flight

    @property
    def url(self):
        return f"http://127.0.0.1:{self.web_port}"

    def start(self):
        self.seen, self.sessions = {}, set()
        self.log_path = self.dir / f"run-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "wb")  # closed in cleanup()
        self.proc = subprocess.Popen(
            [PY, "scripts/run.py"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's foreground process group
        )
        self.seen[(self.proc.pid, processes()[self.proc.pid][4])] = "scripts/run.py"
        self.sessions.add(self.proc.pid)
        return self

    def output(self):
        return self.log_path.read_text(errors="replace")

    def follow(self):
        """Add every new descendant of our processes, and every member of their sessions."""
        table = processes()
        pids = {pid for pid, _ in self.seen}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, pgid, sid, _state, start) in table.items():
                if pid in pids:
                    continue
                if ppid in pids or sid in self.sessions or pgid in self.sessions:
                    self.seen[(pid, start)] = cmdline(pid)
                    pids.add(pid)
                    grew = True
        for pid, (_ppid, pgid, sid, _state, start) in table.items():
            if (pid, start) in self.seen:
                self.sessions.update({pgid, sid} - {os.getpgid(0), os.getsid(0)})
        return table

    def leftovers(self):
        """Our processes still alive (a zombie holds nothing and is not counted)."""
        table = self.follow()
        return [
            f"{pid} [{table[pid][3]}] {cmd}"
            for (pid, start), cmd in self.seen.items()
            if pid in table and table[pid][4] == start and table[pid][3] != "Z"
        ]

    def ports_free(self):
        return port_free(self.web_port) and port_free(self.sim_port)

    def wait_until_up(self):
        def up():
            self.follow()
            if self.proc.poll() is not None:
                pytest.fail(f"scripts/run.py exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return requests.get(self.url + "/healthz", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, START_SECONDS, lambda: f"the web app never answered:\n{self.output()}")
        wait_until(
            lambda: "Ctrl-C stops everything" in self.output(),
            START_SECONDS,
            lambda: f"scripts/run.py never printed its banner:\n{self.output()}",
        )
        self.follow()

    def login(self):
        found = re.search(r"login: admin / (\S+) \((new|from [^)]*)\)", self.output())
        assert found, self.output()
        return found.group(1), found.group(2)

    def hold_a_request_open(self):
        """A request in flight: headers half sent, so a web worker's thread is busy reading
        it. Returns once a worker has accepted the connection and read what came so far."""
        client = socket.create_connection(("127.0.0.1", self.web_port))
        self.holds.append(client)
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        client_port = client.getsockname()[1]
        wait_until(
            lambda: self._read_by_a_worker(client_port),
            30,
            "no web worker took the half-sent request",
        )

    def _read_by_a_worker(self, client_port):
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == self.web_port and (
                int(remote.split(":")[1], 16) == client_port
            ):
                rx_queue = int(fields[4].split(":")[1], 16)
                inode = fields[9] if rx_queue == 0 else None
        if inode in (None, "0"):
            return False
        for (pid, _start), _cmd in list(self.seen.items()):
            try:
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    if os.readlink(fd.path) == f"socket:[{inode}]":
                        return True
            except OSError:
                continue
        return False

    def ctrl_c(self):
        self.follow()
        os.killpg(self.proc.pid, signal.SIGINT)

    def assert_all_gone(self):
        def gone():
            self.proc.poll()
            return not self.leftovers() and self.ports_free()

        wait_until(
            gone,
            STOP_SECONDS,
            lambda: (
                f"{STOP_SECONDS} s after Ctrl-C, left behind: {self.leftovers()}; "
                f"port {self.web_port} free: {port_free(self.web_port)}, "
                f"port {self.sim_port} free: {port_free(self.sim_port)}\n"
                f"output of scripts/run.py:\n{self.output()}"
            ),
        )
        assert self.proc.poll() is not None

    def cleanup(self):
        """Whatever a failed test left: killed, so the next test starts clean. Again and
        again, as a supervisor left behind (django-q2's sentinel) restarts what is killed."""
        for client in self.holds:
            client.close()
        self.holds = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            table = self.follow()
            alive = [
                pid
                for (pid, start) in self.seen
                if pid in table and table[pid][4] == start and table[pid][3] != "Z"
            ]
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.proc is not None:
            self.proc.wait(timeout=30)
            self.log.close()


@pytest.fixture
def make_run(tmp_path):
    """Starts scripts/run.py; each start reuses the same database, ports and password file."""
    run = MakeRun(tmp_path)
    yield run.start
    run.cleanup()


def gunicorn_signals(output):
    return re.findall(r"Handling signal: (\w+)", output)


def test_make_run_serves_the_site_and_one_ctrl_c_stops_everything(make_run):
    developers_file = ROOT / ".admin-password"
    developers_password = developers_file.read_bytes() if developers_file.exists() else None
    run = make_run()
    run.wait_until_up()

    # The printed login is the kept one, and it works over HTTP.
    password, note = run.login()
    assert note == "new"
    assert run.password_file.read_text().strip() == password
    assert run.password_file.stat().st_mode & 0o077 == 0
    with requests.Session() as browser:
        page = browser.get(run.url + "/accounts/login/", timeout=10)
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        overview = browser.post(
            run.url + "/accounts/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": token,
                "next": "/",
            },
            timeout=30,
        )
        assert overview.status_code == 200
        assert overview.url == run.url + "/"
        assert "<h1>Overview</h1>" in overview.text

    # The simulator pushes its changes to the notify-hook, which counts them.
    def hooks_received():
        with sqlite3.connect(f"file:{run.database}?mode=ro", uri=True, timeout=20) as db:
            row = db.execute(
                "SELECT hooks_received FROM tasks_source WHERE name = 'default'"
            ).fetchone()
        return row is not None and row[0] > 0

    wait_until(hooks_received, 90, lambda: f"no hook arrived:\n{run.output()}")

    # Ctrl-C while a request is still in flight: still nothing left within the bound.
    run.hold_a_request_open()
    run.ctrl_c()
    run.assert_all_gone()

    output = run.output()
    # Each child got one signal, from scripts/run.py, and stopped by itself.
    assert gunicorn_signals(output) == ["term"], output
    assert "simulator stopped" in output
    assert re.search(r"Q Cluster \S+ has stopped", output), output
    # The developer's own password file was not touched.
    now = developers_file.read_bytes() if developers_file.exists() else None
    assert now == developers_password


def test_ctrl_c_five_times_in_a_row_leaves_nothing_behind(make_run):
    first_password = None
    for attempt in range(5):
        run = make_run()
        run.wait_until_up()
        password, note = run.login()
        if attempt == 0:
            first_password = password
        else:
            assert (password, note) == (first_password, f"from {run.password_file.name}")
        if attempt % 2:
            run.hold_a_request_open()
        run.ctrl_c()
        run.assert_all_gone()
        assert gunicorn_signals(run.output()) == ["term"], run.output()
        run.cleanup()


def test_a_second_ctrl_c_while_stopping_leaves_nothing_behind_either(make_run):
    run = make_run()
    run.wait_until_up()
    run.hold_a_request_open()  # keeps the web app busy stopping
    run.ctrl_c()
    wait_until(
        lambda: "stopping" in run.output(),
        STOP_SECONDS,
        lambda: f"scripts/run.py did not start stopping:\n{run.output()}",
    )
    run.ctrl_c()
    run.assert_all_gone()
