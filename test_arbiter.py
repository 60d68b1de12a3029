"""Tests for arbiter.py.

Unit tests call the parser and the environ builder directly, from tables;
integration tests start ``python arbiter.py`` for real on a socket the test
binds (passed as ``fd://N``), send real signals, wait on events (log lines,
datagrams, responses, files) under deadlines, and end every process they
start, by pid and process group, even when they fail.
"""

# ---------------------------------------------------------------------------
# Operations: real servers (python arbiter.py ...) on sockets the test binds,
# real signals, systemd notify/activation, TLS, PROXY protocol, logs, statsd,
# daemon mode, --reload, USR2 re-exec. Nothing is mocked; nothing sleeps to
# wait: every wait polls a condition under a deadline, or waits for an event
# (a datagram, a response, a log line, a file).
# ---------------------------------------------------------------------------

import collections
import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

import pytest

import arbiter

ARBITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arbiter.py")
if not os.path.exists(ARBITER):
    ARBITER = "/work/main/arbiter.py"

# A self-signed certificate for CN=localhost, valid 2026-2126 (made once with
# openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost).
TLS_CERT = """\
-----BEGIN CERTIFICATE-----
MIIDCzCCAfOgAwIBAgIUNO2zH9GkFlJIcS93o36U3izVUWIwDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNzAxMTQzOFoYDzIxMjYx
MTAzMDExNDM4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCpbzEDx71pI/KTkpv130wl/cxeLLRw2fWXyDdtTVCl
MvGMo/Opf+Hw5yY2sewrOP6HwXGxY3ImZ0TRDwRpOQZhZmhSVoi+vacRLLeEXu0f
oryN0Sbn3/3AHEoWuTYoGWZavTZst/uOP7ruyO1p8/OjZjWTr7CinfWakpNzFZet
c4N8KREC/lRBXvttpOFWRstdXoLw0LXR8xX2c9FIsMNILbtaXoiREO3sSDtiLdx3
NxNz8e2VC0qw3spEi8oct+aOySHcmW096AnwG/5ehAPgZwi1TMocHKAMx5RX5vjg
7jlL1moi2mCQ/RoWG56zsmd/CnXJSGchn0x6znHfzy59AgMBAAGjUzBRMB0GA1Ud
DgQWBBTt9jcjSQQG0Tzw25Wl75UiowdFwjAfBgNVHSMEGDAWgBTt9jcjSQQG0Tzw
25Wl75UiowdFwjAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQA2
udlWAHGWhPeIHFhE0cPZjf7Xij4CEw0I63xVNLYxra9Y+OUltVWbYJgFuf7j0GIR
9NsKPRISpx/Jbg1CLmtwzoPAgKRvccgf04r/IYUYUKZZzzp0R4buBdVq4cRjVSnC
43xKocQCG2JsB76Mj4W3G+Hi+OLcY44NL7+HrNxx4s6sqiDnQ7dzfYvF1j6KdBGE
hkxrv4GhCxPMO/OLlh9I4jzK2qwOXJBDWvE7dz9RqCoYn9ABQz+BmqXQ3wUPi/3D
C7QWShAajK0xwHhCoqnTWEYwF9s5ckpLQwZcj8VxwzvbB+bpadwq1xAwk8sWKqOe
shfPyWaay+L2oTBZE5Kw
-----END CERTIFICATE-----
"""

TLS_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCpbzEDx71pI/KT
kpv130wl/cxeLLRw2fWXyDdtTVClMvGMo/Opf+Hw5yY2sewrOP6HwXGxY3ImZ0TR
DwRpOQZhZmhSVoi+vacRLLeEXu0foryN0Sbn3/3AHEoWuTYoGWZavTZst/uOP7ru
yO1p8/OjZjWTr7CinfWakpNzFZetc4N8KREC/lRBXvttpOFWRstdXoLw0LXR8xX2
c9FIsMNILbtaXoiREO3sSDtiLdx3NxNz8e2VC0qw3spEi8oct+aOySHcmW096Anw
G/5ehAPgZwi1TMocHKAMx5RX5vjg7jlL1moi2mCQ/RoWG56zsmd/CnXJSGchn0x6
znHfzy59AgMBAAECggEAHZEqSAMYohrkT21TqwXjB3QxMDPz7weSDIEjbv8Bdjqc
HVNVB3yqBHyJ1hyZXneNL0qKGQ8GEf6Oaz8IIYaSfve8d7XjGgoFeAFKKx7XmWAw
MD1R4T/cy6QEJ8/9S+UWz/nZ4AIBM3Man2XPzGAGYbrJ2bJcjBwtimJOudQISnun
fy20vC1c0BVkthEKN5idrreaC/iJq0oZjIEaimb4ITGTisQCFf9mkcYnITabnERt
7qySdaOcjELThKhS08zjVH7kh5z/nq0h0tOzErEMkqlsalVaQuvYMgFwzMYnDCRZ
ikRJ/M40K6DI9y2m0RnEYOTPKXgGaPqHRT2eukzogQKBgQDi6Pc9joHB9JRwHOAF
L9DpAd++IPbVfig6hzEFp0NK877otcNm0LjMyihIUxcVP03PJ9tLEngUSNfLIfA8
wkkno9OKzp0GkJasaFUiKcr+3JoyyO+vSWT94Ajeq75HMTGt+Ht+kDb86vIhpxJt
b+jBa/KUvBJkHkfG7aELrszVwQKBgQC/J+mavEKeSb4GUa5eUBluG33bN5cLV8sP
72ABk7eHQbFG7DObY3AUTZco/HLWmW2iBMhXlaJDC5UQihsTqyKOq7IiRlO3ui7q
aHAiP9hXOnDSkjFrWzcnvC59qWgf3hA/NGD97Qt6QrwyiJAR9zViujBsJHm3YDdn
1H8ov3MfvQKBgQDa7eueeOC5QkH16eY7Gud16Vj3GNcPJamqzsV9ruQ+bO7FmJnv
mXK0JFi5b3HWDj4EoW/z/t3ctGuAkj44YTw0At0YEEFxFBBMSF3bmHdDb5VXaofX
l/jY+k+UiCAOkGhecmC0vHBRll4IGiqtbEwmUwC6gLs93fli9eNsYjtAAQKBgQCd
n/LQZnbkgVhRa59GI/SkR8UjNBa4Ar/uNuxKwJzwymm9Wt4/PuLXyxdfc7PaY4/0
rs7o8floIa/cgJVNRavsS4ZLHwS/lqZDIrV8eHsTipwn9ucLaJ71hAYuFrhGtt1c
0Ps9x+7T9R2s6dErD1cVPwTY18cKQCvP0Xi9iAkNXQKBgAqZrUpldqRqrl0vqJ6f
IKNaNiKdXra0OF2D2zpq6Z6E4cbSMaTj1pt+4MIFGS/fKRByAAueMK++xko/t86Z
pLNXqCwfKuVso4co++lXFK7MGQQLq2KTE9dDJFSKKPr4VCWOPv3Vom2FFty1U7rH
H8gK5/ezgBVJ+aE4ANFf/wbO
-----END PRIVATE KEY-----
"""

OPS_APP = r'''
import json
import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/env":
        keys = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_USER_AGENT")
        body = json.dumps({key: environ.get(key) for key in keys}).encode()
    else:
        body = ("pid=%d ppid=%d" % (os.getpid(), os.getppid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def wait_for(predicate, timeout=10.0, interval=0.02, message=None):
    """Poll ``predicate`` until it returns something true; return that value.
    Fail the test when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            raise AssertionError("timed out after %ss waiting for %s%s" % (
                timeout, getattr(predicate, "__name__", predicate),
                "\n" + detail if detail else ""))
        time.sleep(interval)


def read_text(path):
    try:
        with open(str(path), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_for_log(path, text, timeout=10.0):
    """Wait until the log file at ``path`` contains ``text`` (str or compiled
    regex); return the whole log."""
    def logged():
        content = read_text(path)
        found = text.search(content) if hasattr(text, "search") else text in content
        return content if found else None
    return wait_for(logged, timeout, message=lambda: "log so far:\n" + read_text(path))


def pid_alive(pid):
    """Is ``pid`` a live process (a zombie counts as dead)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def read_pidfile(path):
    try:
        with open(str(path)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def server_env(**extra):
    """The test's environment without anything that would change how a
    server starts (systemd, re-exec, worker count, default bind)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LISTEN_", "WATCHDOG_", "GUNICORN_"))
           and key not in ("NOTIFY_SOCKET", "WEB_CONCURRENCY", "PORT",
                           "FORWARDED_ALLOW_IPS", "SCRIPT_NAME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def listening_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Servers:
    """Starts server processes for one test and ends all of them afterwards:
    a TERM first, then SIGKILL to each process group, then wait()."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []         # Popen objects (each in its own session)
        self.pids = []          # other pids to end: daemons, re-exec'd masters
        self.sockets = []
        self.files = []
        self.log = tmp_path / "server.log"
        (tmp_path / "opsapp.py").write_text(OPS_APP)

    def listen(self):
        sock = listening_socket()
        self.sockets.append(sock)
        return sock

    def popen(self, cmd, pass_fds=(), env=None, log=None):
        out = open(str(log or self.log), "ab")
        self.files.append(out)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            pass_fds=tuple(pass_fds), start_new_session=True,
            cwd=str(self.tmp_path), env=server_env() if env is None else env)
        self.procs.append(proc)
        return proc

    def start(self, args, sock=None, fds=(), env=None, app="opsapp:app", log=None,
              module=False):
        """``python arbiter.py [-b fd://N] ARGS APP``; returns (Popen, port)."""
        head = [sys.executable, "-m", "arbiter"] if module else [sys.executable, ARBITER]
        if sock is None:
            sock = self.listen()
        cmd = head + ["-b", "fd://%d" % sock.fileno()] + list(args)
        if app:
            cmd.append(app)
        proc = self.popen(cmd, (sock.fileno(),) + tuple(fds), env, log)
        return proc, sock.getsockname()[1]

    def track(self, pid):
        if pid and pid not in self.pids:
            self.pids.append(pid)

    def cleanup(self):
        own_group = os.getpgrp()
        groups, loose = set(), set()
        for proc in self.procs:
            groups.add(proc.pid)            # start_new_session: pgid == pid
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in self.pids:
            try:
                group = os.getpgid(pid)
            except ProcessLookupError:
                continue
            (loose if group == own_group else groups).add(pid if group == own_group
                                                          else group)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and (
                any(proc.poll() is None for proc in self.procs)
                or any(pid_alive(pid) for pid in self.pids)):
            time.sleep(0.02)
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in loose:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for item in self.sockets + self.files:
            item.close()


@pytest.fixture
def servers(tmp_path):
    manager = Servers(tmp_path)
    try:
        yield manager
    finally:
        manager.cleanup()


def http_get(port, path="/", headers=None, timeout=10.0, context=None):
    """One request on a new connection (Connection: close): (status, body)."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                           context=context)
    try:
        all_headers = {"Connection": "close"}
        all_headers.update(headers or {})
        conn.request("GET", path, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def served_by(port, **kwargs):
    """(worker pid, its parent's pid) of the worker that answers GET /."""
    status, body = http_get(port, **kwargs)
    assert status == 200, body
    match = re.fullmatch(rb"pid=(\d+) ppid=(\d+)", body)
    assert match, body
    return int(match.group(1)), int(match.group(2))


def raw_exchange(port, data, timeout=10.0):
    """Send raw bytes, read until the server closes; the bytes it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_code(response):
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert match, response
    return int(match.group(1))


def response_body(response):
    return response.partition(b"\r\n\r\n")[2]


def exchange(sock, request):
    """Send one request on an open (keep-alive) socket and read its response."""
    sock.sendall(request)
    response = http.client.HTTPResponse(sock, method="GET")
    response.begin()
    body = response.read()
    return response.status, response.getheader("Connection"), body


def get_status(port):
    """The --status-bind endpoint: (HTTP status, JSON body)."""
    status, body = http_get(port, "/status", timeout=5.0)
    return status, json.loads(body.decode())


def wait_for_status(port, condition, timeout=10.0):
    """Poll the status endpoint until ``condition(code, body)``; return both."""
    def check():
        code, body = get_status(port)
        return (code, body) if condition(code, body) else None
    return wait_for(check, timeout)


def notify_socket(tmp_path):
    """An AF_UNIX datagram socket the test owns, as systemd's NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    if len(path) >= 100:                    # sun_path is 108 bytes at most
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="ops"), "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock, path


def receive_until(sock, predicate, timeout=10.0, seen=None):
    """Receive datagrams (the wait is recv with a timeout) until one makes
    ``predicate`` true; return it. ``seen`` collects every datagram."""
    seen = [] if seen is None else seen
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching datagram within %ss; got %r" % (timeout, seen))
        sock.settimeout(left)
        try:
            data = sock.recv(65536).decode()
        except socket.timeout:
            continue
        seen.append(data)
        if predicate(data):
            return data



# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

def test_precedence_defaults_file_env_cli(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 3\ntimeout = 40\nkeepalive = 7\nbind = ['127.0.0.1:9001']\n")
    env = {"GUNICORN_CMD_ARGS": "--timeout 50 --keep-alive 8"}
    cfg = arbiter.load_config(["-c", str(conf), "--keep-alive", "9", "app:x"], env)
    assert (cfg.workers, cfg.timeout, cfg.keepalive) == (3, 50, 9)
    assert cfg.bind == ["127.0.0.1:9001"]
    assert cfg.graceful_timeout == 30           # the default
    assert cfg.app_uri == "app:x"


@pytest.mark.parametrize("environ, workers, bind", [
    ({}, 1, ["127.0.0.1:8000"]),
    ({"WEB_CONCURRENCY": "5"}, 5, ["127.0.0.1:8000"]),
    ({"PORT": "9123"}, 1, ["0.0.0.0:9123"]),
])
def test_environment_defaults(environ, workers, bind):
    cfg = arbiter.load_config([], environ)
    assert (cfg.workers, cfg.bind) == (workers, bind)


def test_config_file_hooks_and_repeatable_flags(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("import os\n\ndef when_ready(server):\n    pass\n")
    cfg = arbiter.load_config(["-c", str(conf), "-b", "127.0.0.1:1", "-b", "unix:/x",
                               "--preload", "-e", "A=1", "-e", "B=2"], {})
    assert cfg.when_ready.__name__ == "when_ready"
    assert cfg.bind == ["127.0.0.1:1", "unix:/x"]
    assert cfg.preload_app is True and cfg.raw_env == ["A=1", "B=2"]


def test_misspelt_setting_in_config_file_suggests_the_name(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("timout = 5\n")
    with pytest.raises(arbiter.ConfigError, match="did you mean 'timeout'"):
        arbiter.load_config(["-c", str(conf)], {})


def test_gunicorn_only_settings_warn_and_are_ignored(tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("threads = 8\nhttp_protocols = 'h2'\nhelper_value = 3\n")
    cfg = arbiter.load_config(["-c", str(conf), "--threads", "2"], {})
    assert any("'threads'" in w for w in cfg.warnings)
    assert any("'http_protocols'" in w for w in cfg.warnings)


def test_other_worker_class_is_a_clear_error():
    with pytest.raises(arbiter.ConfigError, match="sync"):
        arbiter.load_config(["-k", "gevent"], {})


@pytest.mark.parametrize("name, value", [
    ("workers", "0"), ("timeout", "-1"), ("loglevel", "loud"), ("keepalive", "x"),
])
def test_bad_values_are_config_errors(name, value):
    with pytest.raises(arbiter.ConfigError, match=name):
        arbiter.Config().set(name, value)


def test_every_setting_with_flags_is_on_the_command_line():
    parser = arbiter.build_parser()
    options = {o for action in parser._actions for o in action.option_strings}
    for setting in arbiter.SETTINGS:
        assert set(setting.flags) <= options, setting.name


# ---------------------------------------------------------------------------
# The pidfile
# ---------------------------------------------------------------------------

def finished_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_pidfile_is_written_atomically_and_removed_only_if_ours(tmp_path):
    path = tmp_path / "app.pid"
    pidfile = arbiter.Pidfile(str(path))
    pidfile.create(os.getpid())
    assert path.read_text() == "%d\n" % os.getpid()
    assert os.listdir(str(tmp_path)) == ["app.pid"]     # no temporary file left
    path.write_text("%d\n" % os.getppid())              # someone else's now
    pidfile.unlink()
    assert path.exists()
    path.write_text("%d\n" % os.getpid())
    pidfile.unlink()
    assert not path.exists()


def test_pidfile_naming_a_live_process_refuses_and_a_stale_one_is_replaced(tmp_path):
    path = tmp_path / "app.pid"
    path.write_text("%d\n" % os.getppid())
    with pytest.raises(arbiter.HaltServer, match="Already running"):
        arbiter.Pidfile(str(path)).create(os.getpid())
    assert path.read_text() == "%d\n" % os.getppid()
    path.write_text("%d\n" % finished_pid())
    arbiter.Pidfile(str(path)).create(os.getpid())
    assert path.read_text() == "%d\n" % os.getpid()


# ---------------------------------------------------------------------------
# Listening sockets
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:8001", (socket.AF_INET, ("127.0.0.1", 8001))),
    ("127.0.0.1", (socket.AF_INET, ("127.0.0.1", 8000))),
    (":8002", (socket.AF_INET, ("0.0.0.0", 8002))),
    ("[::1]:8003", (socket.AF_INET6, ("::1", 8003))),
    ("unix:/tmp/app.sock", (socket.AF_UNIX, "/tmp/app.sock")),
    ("fd://3", (None, 3)),
    ("tcp://127.0.0.1:8004", (socket.AF_INET, ("127.0.0.1", 8004))),
])
def test_parse_address(address, expected):
    assert arbiter.parse_address(address) == expected


@pytest.mark.parametrize("address", ["127.0.0.1:http", "127.0.0.1:70000", "fd://x",
                                     "[::1]:port"])
def test_parse_address_errors(address):
    with pytest.raises(arbiter.ConfigError):
        arbiter.parse_address(address)


# ---------------------------------------------------------------------------
# HTTP/1.1 parsing
# ---------------------------------------------------------------------------

def parse(head, **settings):
    cfg = arbiter.Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return arbiter.parse_head(head, cfg)


VALID_HEADS = [
    # head, (method, path, query, version, content_length, chunked, keep_alive)
    (b"GET / HTTP/1.1\r\nHost: a", ("GET", "/", "", (1, 1), None, False, True)),
    (b"GET /p?q=1&r HTTP/1.0", ("GET", "/p", "q=1&r", (1, 0), None, False, False)),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive", ("GET", "/", "", (1, 0), None, False, True)),
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close", ("GET", "/", "", (1, 1), None, False, False)),
    (b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 12", ("POST", "/u", "", (1, 1), 12, False, True)),
    (b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked", ("POST", "/u", "", (1, 1), None, True, True)),
    (b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3", ("POST", "/u", "", (1, 1), 3, False, True)),
    (b"GET / HTTP/1.2\r\nHost: a", ("GET", "/", "", (1, 1), None, False, True)),
    (b"OPTIONS * HTTP/1.1\r\nHost: a", ("OPTIONS", "", "", (1, 1), None, False, True)),
    (b"GET http://example.com:81/x?y HTTP/1.1\r\nHost: other", ("GET", "/x", "y", (1, 1), None, False, True)),
    (b"GET /a#frag HTTP/1.1\r\nHost: a", ("GET", "/a", "", (1, 1), None, False, True)),
    (b"M-SEARCH * HTTP/1.1\r\nHost: a", None),     # a token method, asterisk only for OPTIONS
]


@pytest.mark.parametrize("head, expected", [v for v in VALID_HEADS if v[1]])
def test_parse_head_valid(head, expected):
    request = parse(head)
    assert (request.method, request.path, request.query, request.version,
            request.content_length, request.chunked, request.keep_alive) == expected


def test_parse_head_headers_names_values_and_absolute_form_host():
    request = parse(b"GET http://example.com:81/x HTTP/1.1\r\nHost: other\r\n"
                    b"X-Thing:  two words \t\r\nAccept: a\r\nAccept: b")
    assert request.host == "example.com:81"
    assert ("X-THING", "two words") in request.headers
    assert [v for n, v in request.headers if n == "ACCEPT"] == ["a", "b"]


INVALID_HEADS = [
    (b"GET  / HTTP/1.1\r\nHost: a", 400),                     # two spaces
    (b"GET / HTTP/1.1 \r\nHost: a", 400),
    (b"get / HTTP/1.1\r\nHost: a", 400),                      # lower-case method
    (b"G@T / HTTP/1.1\r\nHost: a", 400),
    (b"GET /a\x01 HTTP/1.1\r\nHost: a", 400),
    (b"GET /\xe9 HTTP/1.1\r\nHost: a", 400),                  # non-ASCII target
    (b"GET / HTTP/2.0\r\nHost: a", 505),
    (b"GET / HTTP/0.9\r\nHost: a", 505),
    (b"GET / HTTX/1.1\r\nHost: a", 400),
    (b"GET / HTTP/1.1", 400),                                 # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400),
    (b"GET / HTTP/1.1\r\nHost: a b", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nName : x", 400),          # space before colon
    (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded", 400),   # obs-fold
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity", 400),
    (b"GET * HTTP/1.1\r\nHost: a", 400),
    (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com", 501),
    (b"GET http://user@example.com/ HTTP/1.1\r\nHost: a", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: b", 400),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: a", 414),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 9000, 431),
    (b"GET / HTTP/1.1\r\nHost: a" + b"\r\nX: y" * 101, 431),
]


@pytest.mark.parametrize("head, status", INVALID_HEADS)
def test_parse_head_invalid(head, status):
    with pytest.raises(arbiter.HTTPError) as raised:
        parse(head)
    assert raised.value.status == status


@pytest.mark.parametrize("head, settings, check", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded", {"permit_obsolete_folding": True},
     lambda r: ("X", "a folded") in r.headers),
    (b"GET / HTTP/1.1\r\nHost: a\r\nName : x", {"strip_header_spaces": True},
     lambda r: ("NAME", "x") in r.headers),
    (b"get / HTTP/1.1\r\nHost: a", {"casefold_http_method": True},
     lambda r: r.method == "GET"),
    (b"mkcol / HTTP/1.1\r\nHost: a", {"permit_unconventional_http_method": True},
     lambda r: r.method == "mkcol"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 9000, {"limit_request_field_size": 9100},
     lambda r: r.headers[-1][1] == "v" * 9000),
])
def test_parse_head_settings_that_relax_a_rule(head, settings, check):
    assert check(parse(head, **settings))


@pytest.mark.parametrize("header_map, expected", [
    ("drop", [("HOST", "a"), ("X-FOO-BAR", "1")]),
    ("dangerous", [("HOST", "a"), ("X-FOO-BAR", "1"), ("X-FOO_BAR", "2")]),
])
def test_underscore_headers_never_overwrite_dashed_ones(header_map, expected):
    request = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo-Bar: 1\r\nX-Foo_Bar: 2",
                    header_map=header_map)
    assert request.headers == expected


def test_underscore_headers_refused():
    with pytest.raises(arbiter.HTTPError) as raised:
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 2", header_map="refuse")
    assert raised.value.status == 400


def test_expect_continue_only_on_http_11():
    assert parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                 b"Expect: 100-continue").expect_continue
    assert not parse(b"POST / HTTP/1.0\r\nContent-Length: 1\r\n"
                     b"Expect: 100-continue").expect_continue


MUTATION_SEEDS = [head for head, _ in VALID_HEADS + INVALID_HEADS if len(head) < 400] + [
    b"POST /p?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nConnection: keep-alive",
    b"GET http://h:80/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked",
]
MUTATION_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b"_", b"\xff",
                  b"\x7f", b"%", b"#", b"?", b"Host: x", b"Content-Length: 9",
                  b"Transfer-Encoding: chunked", b"HTTP/1.1", b"\r\n "]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(data) + 1)
        op = rng.randrange(5)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(MUTATION_BYTES)
        elif op == 2:
            del data[pos:pos + rng.randint(1, 6)]
        elif op == 3 and data:
            start = rng.randrange(len(data))
            data[pos:pos] = data[start:start + rng.randint(1, 24)]
        else:
            del data[pos:]
    return bytes(data)


def test_mutated_requests_give_a_request_or_a_clean_http_error():
    """Seeded: thousands of mutated heads, under every relaxing setting too;
    never anything but a Request or an HTTPError. (Before a release we run
    the same loop with a million inputs.)"""
    rng = random.Random(20261127)
    configs = [arbiter.Config(), arbiter.Config()]
    for name, value in [("permit_obsolete_folding", True), ("strip_header_spaces", True),
                        ("header_map", "dangerous"), ("casefold_http_method", True),
                        ("permit_unconventional_http_method", True),
                        ("limit_request_line", 0), ("limit_request_field_size", 0)]:
        configs[1].set(name, value)
    outcomes = collections.Counter()
    for i in range(6000):
        head = mutate(rng, rng.choice(MUTATION_SEEDS))
        try:
            arbiter.parse_head(head, configs[i % 2])
            outcomes["request"] += 1
        except arbiter.HTTPError as exc:
            assert exc.status in (400, 414, 431, 501, 505)
            outcomes[exc.status] += 1
    assert outcomes["request"] > 100 and outcomes[400] > 1000   # both kinds were reached


# -- body readers, on a real socket pair ---------------------------------------

class BodyEnd:
    """The server end of a socketpair as the body readers see it: a real
    Connection, with a stand-in for the worker (its settings and heartbeat)."""

    def __init__(self):
        self.cfg = arbiter.Config()
        self.cfg.set("timeout", 2)
        self.ssl_context = None
        server, self.client = socket.socketpair()
        server.setblocking(False)
        self.conn = arbiter.Connection(server, ("127.0.0.1", 1), None, self)

    def notify(self):
        pass

    def body(self, head, data=b"", close=False):
        request = arbiter.parse_head(head, self.cfg)
        self.client.sendall(data)
        if close:
            self.client.shutdown(socket.SHUT_WR)
        return arbiter.Body(arbiter.body_reader(request, self.conn, self.cfg))

    def close(self):
        self.client.close()
        self.conn.sock.close()


@pytest.fixture
def body_end():
    end = BodyEnd()
    try:
        yield end
    finally:
        end.close()


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"


def test_chunked_body_with_extensions_and_trailers(body_end):
    body = body_end.body(CHUNKED_HEAD, b"5;name=val\r\nhello\r\n6 ; q=\"x y\"\r\n world\r\n"
                                       b"0\r\nVary: *\r\nX-Sum: 1\r\n\r\n")
    assert body.read() == b"hello world"
    assert body.read() == b""


@pytest.mark.parametrize("data, error", [
    (b"x\r\nhello\r\n0\r\n\r\n", arbiter.BadRequest),             # size not hex
    (b"5\r\nhelloXX0\r\n\r\n", arbiter.BadRequest),               # no CRLF after data
    (b"5;\r\nhello\r\n0\r\n\r\n", arbiter.BadRequest),            # empty extension
    (b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", arbiter.BadRequest),
    (b"5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n", arbiter.BadRequest),
    (b"10000000000000000\r\n", arbiter.BadRequest),               # 17 hex digits
])
def test_chunked_body_errors(body_end, data, error):
    body = body_end.body(CHUNKED_HEAD, data, close=True)
    with pytest.raises(error):
        body.read()


@pytest.mark.parametrize("head, data", [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10", b"short"),
    (CHUNKED_HEAD, b"5\r\nhel"),
])
def test_a_body_cut_short_is_an_error_not_a_shorter_body(body_end, head, data):
    body = body_end.body(head, data, close=True)
    with pytest.raises(arbiter.IncompleteBody):
        body.read()


def test_body_read_readline_readlines_iteration(body_end):
    data = b"one\ntwo\nthree\nfour"
    body = body_end.body(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d" % len(data),
                         data)
    assert body.readline() == b"one\n"
    assert body.readline(2) == b"tw"
    assert body.read(2) == b"o\n"
    assert list(body) == [b"three\n", b"four"]
    assert body.read() == b"" and body.readline() == b"" and body.readlines() == []


def test_expect_100_continue_is_sent_on_the_first_read_only(body_end):
    body = body_end.body(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                         b"Expect: 100-continue")
    body_end.client.settimeout(0.2)
    with pytest.raises(socket.timeout):
        body_end.client.recv(100)             # nothing before the app reads
    body_end.client.sendall(b"ok")
    assert body.read() == b"ok"
    assert body_end.client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"


# ---------------------------------------------------------------------------
# WSGI environ and response
# ---------------------------------------------------------------------------

class EnvironWorker:
    """What build_environ and Response need of a worker, around a real socket."""

    def __init__(self, listener):
        self.cfg = arbiter.Config()
        self.log = arbiter.Log(self.cfg)
        self.base_environ = {listener: arbiter.base_environ(listener, self.cfg)}
        self.secure_headers = arbiter.secure_header_keys(self.cfg)
        self.ssl_context = None
        self.draining = False
        self.header_cache = {}
        self.checked_header = lambda item: arbiter.check_response_header(item)

    def http_date(self):
        return arbiter.http_date(0)

    def notify(self):
        pass


@pytest.fixture
def environ_for():
    listener = listening_socket()
    client, server = socket.socketpair()
    worker = EnvironWorker(listener)
    conn = arbiter.Connection(server, ("10.1.2.3", 4567), listener, worker)

    def build(head):
        request = arbiter.parse_head(head, worker.cfg)
        request.body = arbiter.EMPTY_BODY
        return arbiter.build_environ(request, conn, worker), request, conn, worker
    try:
        yield build
    finally:
        for sock in (listener, client, server):
            sock.close()


def test_environ_has_every_pep3333_key_with_the_right_types(environ_for):
    environ = environ_for(b"GET /a%20b%C3%A9/c?x=%20y HTTP/1.1\r\nHost: h:1\r\n"
                          b"Content-Type: text/plain\r\nContent-Length: 0\r\n"
                          b"X-Dup: 1\r\nX-Dup: 2\r\nUser-Agent: t")[0]
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR"):
        assert type(environ[key]) is str, key
    assert environ["PATH_INFO"] == "/a b\xc3\xa9/c"          # percent-decoded, latin-1
    assert environ["QUERY_STRING"] == "x=%20y"                # raw
    assert environ["RAW_URI"] == "/a%20b%C3%A9/c?x=%20y"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_X_DUP"] == "1,2" and environ["HTTP_HOST"] == "h:1"
    assert environ["REMOTE_ADDR"] == "10.1.2.3" and environ["REMOTE_PORT"] == "4567"
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is False and environ["wsgi.run_once"] is False
    assert hasattr(environ["wsgi.input"], "read") and hasattr(environ["wsgi.errors"], "write")
    assert environ["wsgi.file_wrapper"] is arbiter.FileWrapper


def test_environ_proxy_scheme_headers_trusted_and_contradictory(environ_for):
    environ, _, conn, _ = environ_for(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https")
    assert not conn.trusted and environ["wsgi.url_scheme"] == "http"   # 10.1.2.3 untrusted
    conn.trusted = True
    request = arbiter.parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https",
                                 arbiter.Config())
    request.body = arbiter.EMPTY_BODY
    assert arbiter.build_environ(request, conn, conn.worker)["wsgi.url_scheme"] == "https"
    request = arbiter.parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n"
                                 b"X-Forwarded-Ssl: off", arbiter.Config())
    request.body = arbiter.EMPTY_BODY
    with pytest.raises(arbiter.BadRequest):
        arbiter.build_environ(request, conn, conn.worker)


@pytest.mark.parametrize("status, headers, message", [
    ("200 OK\r\nX: y", [], "invalid status"),
    ("OK", [], "invalid status"),
    ("200 OK", [("X", "a\nb")], "invalid value"),
    ("200 OK", [("X", "a\x00b")], "invalid value"),
    ("200 OK", [("Bad Name", "v")], "invalid header name"),
    ("200 OK", [("Transfer-Encoding", "chunked")], "hop-by-hop"),
    ("200 OK", [("Upgrade", "h2c")], "hop-by-hop"),
    ("200 OK", [("X", "\u20ac")], "latin-1"),
    ("200 OK", [["X", "v"]], "tuple"),
    ("200 OK", [("Content-Length", "12a")], "Content-Length"),
])
def test_start_response_refuses_what_http_can_not_carry(environ_for, status, headers, message):
    _, request, conn, worker = environ_for(b"GET / HTTP/1.1\r\nHost: h")
    response = arbiter.Response(conn, request, worker)
    with pytest.raises(arbiter.ResponseError, match=message):
        response.start_response(status, headers)


def test_start_response_twice_needs_exc_info(environ_for):
    _, request, conn, worker = environ_for(b"GET / HTTP/1.1\r\nHost: h")
    response = arbiter.Response(conn, request, worker)
    response.start_response("200 OK", [])
    with pytest.raises(arbiter.ResponseError, match="again"):
        response.start_response("500 Oops", [])
    try:
        raise ValueError("app failed")
    except ValueError:
        response.start_response("500 Oops", [], sys.exc_info())   # allowed: nothing sent
    assert response.status == "500 Oops"


@pytest.mark.parametrize("status, reason", [(400, "Bad Request"), (408, "Request Timeout"),
                                            (414, "URI Too Long"), (501, "Not Implemented"),
                                            (505, "HTTP Version Not Supported")])
def test_error_pages(status, reason):
    page = arbiter.error_page(status)
    head, _, body = page.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason.encode()))
    assert b"Connection: close" in head and b"Content-Length: %d" % len(body) in head
    assert body == reason.encode() + b"\n"


def test_http_date_is_imf_fixdate():
    assert arbiter.http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"


# ---------------------------------------------------------------------------
# App loading
# ---------------------------------------------------------------------------

def test_load_app_forms(tmp_path, monkeypatch):
    (tmp_path / "loadme.py").write_text(
        "def application(e, s):\n    return []\n"
        "app = application\n"
        "def factory(n, name='x'):\n"
        "    def made(e, s):\n        return [str((n, name)).encode()]\n"
        "    return made\n"
        "not_callable = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert arbiter.load_app("loadme").__name__ == "application"
    assert arbiter.load_app("loadme:app").__name__ == "application"
    assert arbiter.load_app("loadme:factory(2, name='y')")(None, None) == [b"(2, 'y')"]
    with pytest.raises(arbiter.AppImportError, match="nosuchmodule"):
        arbiter.load_app("nosuchmodule:app")
    with pytest.raises(arbiter.AppImportError, match="'missing'"):
        arbiter.load_app("loadme:missing")
    with pytest.raises(arbiter.AppImportError, match="callable"):
        arbiter.load_app("loadme:not_callable")
    with pytest.raises(arbiter.AppImportError, match="literal"):
        arbiter.load_app("loadme:factory(os.getcwd())")


# ---------------------------------------------------------------------------
# The Arbiter and the sync worker, for real
# ---------------------------------------------------------------------------

CORE_APP = r'''
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for_release(name):
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(HERE, name)) and time.monotonic() < deadline:
        time.sleep(0.01)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/hold":
        open(os.path.join(HERE, "holding"), "w").close()
        wait_for_release("release")
        body = b"released"
    elif path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or 30))
        body = b"slept"
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/read-two":
        body = environ["wsgi.input"].read(2)
    elif path == "/stream":
        start_response("200 OK", headers)
        return (part for part in (b"one ", b"two ", b"three"))
    elif path == "/file":
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](open(os.path.join(HERE, "data.bin"), "rb"))
    elif path == "/error":
        raise RuntimeError("the app failed on purpose")
    else:
        body = ("pid=%d ppid=%d" % (os.getpid(), os.getppid())).encode()
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]
'''


@pytest.fixture
def core(servers):
    """The servers fixture, with the app above as coreapp.py."""
    (servers.tmp_path / "coreapp.py").write_text(CORE_APP)
    return servers


def children(pid):
    """The live child processes of ``pid`` (its workers)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(p) for p in f.read().split()]
    except OSError:
        return []
    return [kid for kid in kids if pid_alive(kid)]


def wait_for_workers(pid, count, timeout=10.0):
    """Wait until ``pid`` has exactly ``count`` workers; their pids."""
    found = wait_for(lambda: [sorted(children(pid))] if len(children(pid)) == count else None,
                     timeout, message=lambda: "children: %s" % children(pid))
    return found[0]


def read_response(reader):
    """One response from a socket's buffered reader (``sock.makefile("rb")``,
    one per connection): (status, headers dict, body); the body is read by
    Content-Length, chunked framing, or until the server closes."""
    status_line = reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int(reader.readline().split(b";")[0], 16)
            if size == 0:
                reader.readline()
                break
            body += reader.read(size)
            reader.readline()
    else:
        body = reader.read()
    return status, headers, body


def test_demo_app_pidfile_and_clean_stop(core, tmp_path):
    pidfile = tmp_path / "app.pid"
    proc, port = core.start(["-w", "2", "-p", str(pidfile)], app=None)
    log = wait_for_log(core.log, re.compile(r"Booting worker with pid: \d+[\s\S]*"
                                            r"Booting worker with pid: \d+"))
    assert "Listening at: http://127.0.0.1:%d (%d)" % (port, proc.pid) in log
    assert "Using worker: sync" in log
    status, body = http_get(port)
    assert status == 200 and b"arbiter.py" in body and b"pid" in body
    assert read_pidfile(pidfile) == proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not pidfile.exists()
    assert "Shutting down: Master" in read_text(core.log)


def test_keep_alive_pipelining_and_http10(core):
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        first, second, third = (read_response(reader), read_response(reader),
                                read_response(reader))
        assert [r[0] for r in (first, second, third)] == [200, 200, 200]
        assert second[2] == b"hello" and first[2] == third[2]      # same worker, in order
        sock.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(reader)
        assert headers["connection"] == "close" and reader.read(10) == b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, _ = read_response(reader)
        assert status == 200 and headers["connection"] == "close" and reader.read(10) == b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert read_response(reader)[1]["connection"] == "keep-alive"
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert read_response(reader)[0] == 200


def test_chunked_response_head_and_file_wrapper(core):
    (core.tmp_path / "data.bin").write_bytes(bytes(range(256)) * 300)
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(reader)
        assert headers["transfer-encoding"] == "chunked" and body == b"one two three"
        sock.sendall(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):               # HEAD: a head, no body
            head += reader.read(1)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head
        status, headers, body = read_response(reader)
        assert body == bytes(range(256)) * 300
        assert headers["content-length"] == str(256 * 300)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(sock.makefile("rb"))
        assert "transfer-encoding" not in headers and body == b"one two three"


def test_chunked_request_body_and_100_continue(core):
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer-Field: 1\r\n\r\n")
        assert read_response(reader)[2] == b"wikipedia"
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert reader.readline() == b"\r\n"
        sock.sendall(b"body")
        assert read_response(reader)[2] == b"body"
        # An app that reads part of a small body: the rest is drained and
        # the connection stays usable.
        sock.sendall(b"POST /read-two HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
                     b"abcdefGET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert read_response(reader)[2] == b"ab"
        assert read_response(reader)[2] == b"ok"


def test_a_bad_request_closes_the_connection_and_nothing_after_it_is_read(core):
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    reply = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n"
                               b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 400 Bad Request\r\n" in reply and b"smuggled" not in reply


def test_silent_and_slow_clients_do_not_take_the_workers(core):
    proc, port = core.start(["-w", "2", "--timeout", "30"], app="coreapp:app")
    assert http_get(port)[0] == 200
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        for sock in idle[:10]:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")    # half a head
        started = time.monotonic()
        assert http_get(port, timeout=5)[0] == 200
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()


def test_app_exception_is_a_500_and_the_worker_lives_on(core):
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    first = served_by(port)[0]
    status, body = http_get(port, "/error")
    assert status == 500 and b"failed on purpose" not in body
    log = wait_for_log(core.log, "RuntimeError: the app failed on purpose")
    assert "Traceback" in log and "Error handling request /error" in log
    assert served_by(port)[0] == first


def send_and_wait(proc, sig, log):
    """Send a signal and wait until the master logs that it handled it (the
    kernel merges a signal sent again before the first was delivered)."""
    line = "Handling signal: %s" % signal.Signals(sig).name[3:].lower()
    seen = read_text(log).count(line)
    proc.send_signal(sig)
    wait_for(lambda: read_text(log).count(line) > seen)


def test_ttin_ttou_hup_and_winch(core):
    proc, port = core.start(["-w", "2"], app="coreapp:app")
    first = wait_for_workers(proc.pid, 2)
    send_and_wait(proc, signal.SIGTTIN, core.log)
    wait_for_workers(proc.pid, 3)
    send_and_wait(proc, signal.SIGTTOU, core.log)
    send_and_wait(proc, signal.SIGTTOU, core.log)
    wait_for_workers(proc.pid, 1)
    send_and_wait(proc, signal.SIGTTOU, core.log)          # never below one
    assert len(wait_for_workers(proc.pid, 1)) == 1
    send_and_wait(proc, signal.SIGHUP, core.log)           # back to -w 2, all new
    second = wait_for(lambda: children(proc.pid) if len(children(proc.pid)) == 2 and
                      not set(children(proc.pid)) & set(first) else None)
    worker, master = served_by(port)
    assert master == proc.pid and worker in second
    send_and_wait(proc, signal.SIGWINCH, core.log)
    wait_for_workers(proc.pid, 0)
    assert proc.poll() is None and "graceful stop of workers" in read_text(core.log)
    send_and_wait(proc, signal.SIGTTIN, core.log)
    wait_for_workers(proc.pid, 1)
    assert http_get(port)[0] == 200


def test_usr1_reopens_the_access_log(core, tmp_path):
    access = tmp_path / "access.log"
    proc, port = core.start(["-w", "1", "--access-logfile", str(access)], app="coreapp:app")
    http_get(port, "/first?x=1")
    wait_for(lambda: "GET /first?x=1 HTTP/1.1" in read_text(access))
    access.rename(tmp_path / "access.log.1")
    proc.send_signal(signal.SIGUSR1)
    wait_for_log(core.log, "Handling signal: usr1")

    def logged_in_new_file():       # the worker reopens on its own USR1, just after
        http_get(port, "/second")
        return "GET /second HTTP/1.1" in read_text(access)
    wait_for(logged_in_new_file)
    http_get(port, "/third")
    wait_for(lambda: "GET /third HTTP/1.1" in read_text(access))
    assert "/third" not in read_text(tmp_path / "access.log.1")


def test_term_finishes_the_request_in_flight_then_exits(core, tmp_path):
    pidfile = tmp_path / "app.pid"
    proc, port = core.start(["-w", "2", "-p", str(pidfile)], app="coreapp:app")
    core.sockets.pop().close()      # the server's copy is now the only one
    wait_for_workers(proc.pid, 2)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/hold")
    wait_for(lambda: (tmp_path / "holding").exists())
    proc.send_signal(signal.SIGTERM)
    wait_for_log(core.log, "Handling signal: term")
    wait_for(lambda: connection_refused(port), 5)     # listeners closed at once
    assert proc.poll() is None                         # still finishing /hold
    (tmp_path / "release").write_text("")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"released")
    assert proc.wait(timeout=10) == 0
    assert not pidfile.exists() and children(proc.pid) == []


def connection_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_int_stops_at_once_even_with_a_request_in_flight(core, tmp_path):
    proc, port = core.start(["-w", "1"], app="coreapp:app")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/hold")
    wait_for(lambda: (tmp_path / "holding").exists())
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 3
    conn.close()


def test_worker_timeout_logs_the_stack_and_the_request_then_replaces_it(core):
    proc, port = core.start(["-w", "1", "--timeout", "2"], app="coreapp:app")
    stuck = served_by(port)[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/sleep?30")
    log = wait_for_log(core.log, "while serving GET /sleep?30", 10)
    assert "WORKER TIMEOUT (pid:%d)" % stuck in log
    assert "time.sleep" in log and "coreapp.py" in log          # the Python stack
    log = wait_for_log(core.log, re.compile(r"Worker \(pid:%d\) .*timeout" % stuck))
    assert served_by(port)[0] != stuck
    conn.close()


@pytest.mark.parametrize("module, expected", [
    ("raise RuntimeError('broken at import')\n", "broken at import"),
    ("x = 1\n", "'app'"),
])
def test_an_app_that_can_not_load_stops_the_server_with_code_4(core, module, expected):
    (core.tmp_path / "badapp.py").write_text(module)
    started = time.monotonic()
    proc, port = core.start(["-w", "2"], app="badapp:app")
    assert proc.wait(timeout=10) == 4
    assert time.monotonic() - started < 5
    log = read_text(core.log)
    assert expected in log and "App failed to load." in log
    assert log.count("Booting worker") <= 2                    # no restart loop


def test_missing_module_names_it(core):
    proc, port = core.start(["-w", "1"], app="no_such_module_here:app")
    assert proc.wait(timeout=10) == 4
    assert "no_such_module_here" in read_text(core.log)


def test_a_pidfile_naming_a_live_process_refuses_to_start(core, tmp_path):
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("%d\n" % os.getpid())
    proc, port = core.start(["-w", "1", "-p", str(pidfile)], app="coreapp:app")
    assert proc.wait(timeout=10) != 0
    assert "Already running on PID %d" % os.getpid() in read_text(core.log)
    assert pidfile.read_text() == "%d\n" % os.getpid()


def test_max_requests_recycles_and_no_worker_serves_more(core):
    proc, port = core.start(["-w", "1", "--max-requests", "5"], app="coreapp:app")
    served = collections.Counter(served_by(port)[0] for _ in range(13))
    assert len(served) >= 3 and max(served.values()) <= 5
    assert "exited (recycled: max requests)" in wait_for_log(core.log, "recycled")


def test_unix_socket_is_served_and_removed_on_exit(core, tmp_path):
    path = str(tmp_path / "app.sock")
    proc = core.popen([sys.executable, ARBITER, "-w", "1", "-b", "unix:" + path,
                       "coreapp:app"])
    wait_for(lambda: os.path.exists(path))
    wait_for_log(core.log, "Booting worker")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_response(sock.makefile("rb"))[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not os.path.exists(path)


HOOKS_CONF = r'''
import os

def record(name):
    with open(os.path.join(os.path.dirname(__file__), "hooks.txt"), "a") as f:
        f.write(name + "\n")

def on_starting(server): record("on_starting")
def when_ready(server): record("when_ready")
def pre_fork(server, worker): record("pre_fork")
def post_fork(server, worker): record("post_fork")
def post_worker_init(worker): record("post_worker_init")
def pre_request(worker, req): record("pre_request %s %s" % (req.method, req.path))
def post_request(worker, req, environ, resp): record("post_request %s" % resp.status)
def worker_exit(server, worker): record("worker_exit")
def child_exit(server, worker): record("child_exit")
def on_exit(server): record("on_exit")
'''


def test_hooks_run_in_order_with_gunicorns_signatures(core, tmp_path):
    (tmp_path / "hooks.conf.py").write_text(HOOKS_CONF)
    proc, port = core.start(["-w", "1", "-c", str(tmp_path / "hooks.conf.py")],
                            app="coreapp:app")
    wait_for(lambda: "post_worker_init" in read_text(tmp_path / "hooks.txt"))
    assert http_get(port, "/x")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert read_text(tmp_path / "hooks.txt").split("\n") == [
        "on_starting", "when_ready", "pre_fork", "post_fork", "post_worker_init",
        "pre_request GET /x", "post_request 200 OK", "worker_exit", "child_exit",
        "on_exit", ""]


# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------

# -- 1. the status endpoint and --shutdown-delay -----------------------------

def test_status_endpoint_counts_requests_and_drains_on_term(servers):
    status_sock = servers.listen()
    status_port = status_sock.getsockname()[1]
    proc, port = servers.start(["-w", "2", "--shutdown-delay", "2",
                                "--status-bind", "fd://%d" % status_sock.fileno()],
                               fds=[status_sock.fileno()])
    ready = wait_for_status(status_port, lambda code, body: code == 200)
    assert ready[1]["status"] == "ready"
    assert ready[1]["workers"] == 2
    assert ready[1]["pid"] == proc.pid
    assert ready[1]["requests"] == 0
    for _ in range(3):
        assert http_get(port)[0] == 200
    counted = wait_for_status(status_port, lambda code, body: body["requests"] == 3, 5)
    assert counted[0] == 200 and counted[1]["status"] == "ready"

    os.kill(proc.pid, signal.SIGTERM)
    term_at = time.monotonic()
    draining = wait_for_status(status_port, lambda code, body: code == 503, 5)
    assert draining[1]["status"] == "draining"
    # The app still answers on the main socket while the master drains.
    status, body = http_get(port)
    assert status == 200 and body.startswith(b"pid=")
    assert proc.poll() is None
    assert time.monotonic() - term_at < 2.0, "the checks above ran after the delay"
    wait_for(lambda: proc.poll() is not None, 15)
    assert proc.returncode == 0
    assert time.monotonic() - term_at >= 1.9, "stopped before --shutdown-delay passed"
    assert "Draining: serving 2.0s more" in read_text(servers.log)


# -- 2, 3. systemd notify and watchdog -----------------------------------------

def test_systemd_notify_ready_reloading_stopping(servers, tmp_path):
    notify, path = notify_socket(tmp_path)
    with notify:
        proc, port = servers.start(["-w", "1"], env=server_env(NOTIFY_SOCKET=path))
        seen = []
        ready = receive_until(notify, lambda m: "READY=1" in m.split("\n"), seen=seen)
        assert "MAINPID=%d" % proc.pid in ready.split("\n"), seen
        assert http_get(port)[0] == 200

        os.kill(proc.pid, signal.SIGHUP)
        receive_until(notify, lambda m: "RELOADING=1" in m.split("\n"), seen=seen)
        receive_until(notify, lambda m: "READY=1" in m.split("\n"), seen=seen)
        assert http_get(port)[0] == 200

        os.kill(proc.pid, signal.SIGTERM)
        receive_until(notify, lambda m: "STOPPING=1" in m.split("\n"), seen=seen)
        wait_for(lambda: proc.poll() is not None, 10)
        assert proc.returncode == 0


def test_systemd_watchdog_pings(servers, tmp_path):
    # WATCHDOG_USEC=200000: systemd wants a ping at least every 0.2 s, and
    # the server pings every half of that; after the first ping, four more
    # must come within a second (about 0.4 s expected, 4 s at a 1 s interval).
    notify, path = notify_socket(tmp_path)
    with notify:
        proc, _ = servers.start(["-w", "1"], env=server_env(NOTIFY_SOCKET=path,
                                                            WATCHDOG_USEC="200000"))
        seen = []
        receive_until(notify, lambda m: m == "WATCHDOG=1", 2.0, seen)
        deadline = time.monotonic() + 1.0
        for _ in range(4):
            receive_until(notify, lambda m: m == "WATCHDOG=1",
                          max(0.01, deadline - time.monotonic()), seen)
        assert seen.count("WATCHDOG=1") >= 5
        assert proc.poll() is None


# -- 4. systemd socket activation --------------------------------------------

# Run as: python -c ACTIVATE FD ARBITER ARGS...: move FD to 3, set LISTEN_PID to
# our own pid (kept by exec) and LISTEN_FDS=1, then exec the server.
ACTIVATE = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.environ['LISTEN_FDS'] = '1'\n"
    "os.execv(sys.executable, [sys.executable] + sys.argv[2:])\n")


def test_systemd_socket_activation_without_bind(servers):
    sock = servers.listen()
    port = sock.getsockname()[1]
    proc = servers.popen([sys.executable, "-c", ACTIVATE, str(sock.fileno()), ARBITER,
                          "-w", "1", "opsapp:app"], pass_fds=[sock.fileno()])
    worker, master = served_by(port)
    assert master == proc.pid
    log = wait_for_log(servers.log, "Listening at: http://127.0.0.1:%d (%d)" % (port, proc.pid))
    assert log.count("Listening at:") == 1, log       # not the default 127.0.0.1:8000


# -- 5. TLS --------------------------------------------------------------------

def client_tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_tls_serves_https_keepalive_and_ignores_silent_clients(servers, tmp_path):
    (tmp_path / "cert.pem").write_text(TLS_CERT)
    (tmp_path / "key.pem").write_text(TLS_KEY)
    proc, port = servers.start(["-w", "1", "--certfile", str(tmp_path / "cert.pem"),
                                "--keyfile", str(tmp_path / "key.pem")])
    context = client_tls_context()
    status, body = http_get(port, "/env", context=context)
    assert status == 200
    assert json.loads(body.decode())["wsgi.url_scheme"] == "https"

    request = b"GET /env HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            first = exchange(tls, request)
            second = exchange(tls, request)
    for status, connection, body in (first, second):
        assert status == 200 and (connection or "").lower() != "close"
        assert json.loads(body.decode())["wsgi.url_scheme"] == "https"

    # A client that connects and says nothing (no ClientHello) must not hold
    # the only worker.
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        started = time.monotonic()
        status, body = http_get(port, "/env", context=context, timeout=10)
        assert status == 200
        assert time.monotonic() - started < 2.0, "a silent client held the only worker"
    assert proc.poll() is None


# -- 6. PROXY protocol ----------------------------------------------------------

PROXY_REQUEST = b"GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2_header(source, destination, source_port, destination_port, command=1):
    addresses = (socket.inet_aton(source) + socket.inet_aton(destination)
                 + struct.pack("!HH", source_port, destination_port))
    return PROXY_V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, 0x11,
                                            len(addresses)) + addresses


def test_proxy_protocol_v1(servers):
    proc, port = servers.start(["-w", "1", "--proxy-protocol", "v1"])
    response = raw_exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n"
                            + PROXY_REQUEST)
    assert status_code(response) == 200, response
    environ = json.loads(response_body(response).decode())
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("203.0.113.7", "5555")
    # Only the header line is sent, so that the server reads everything
    # before it answers and closes (unread bytes would turn the close into a
    # reset that can eat the answer).
    for bad in (b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",
                b"PROXY TCP4 not.an.ip 10.0.0.1 5555 80\r\n",
                b"PROXY TCP9 203.0.113.7 10.0.0.1 5555 80\r\n"):
        assert status_code(raw_exchange(port, bad)) == 400, bad
    # Without a header at all: 400 too (v1 is required).
    assert status_code(raw_exchange(port, b"GET /env HTTP/1.1\r\n\r\n")) == 400


@pytest.mark.parametrize("mode", ["v2", "auto"])
def test_proxy_protocol_v2(servers, mode):
    proc, port = servers.start(["-w", "1", "--proxy-protocol", mode])
    response = raw_exchange(port, proxy_v2_header("198.51.100.9", "10.0.0.1", 4242, 443)
                            + PROXY_REQUEST)
    assert status_code(response) == 200, response
    environ = json.loads(response_body(response).decode())
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("198.51.100.9", "4242")
    # LOCAL (a proxy's own health check): the real peer stays.
    response = raw_exchange(port, proxy_v2_header("198.51.100.9", "10.0.0.1", 4242, 443, 0)
                            + PROXY_REQUEST)
    assert status_code(response) == 200, response
    assert json.loads(response_body(response).decode())["REMOTE_ADDR"] == "127.0.0.1"


def test_proxy_protocol_from_a_peer_not_allowed_is_403(servers):
    proc, port = servers.start(["-w", "1", "--proxy-protocol", "v1",
                                "--proxy-allow-from", "10.9.9.9"])
    response = raw_exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n")
    assert status_code(response) == 403, response
    assert b"203.0.113.7" not in response


# -- 7. JSON access log ----------------------------------------------------------

def test_json_access_log_escapes_what_the_client_sent(servers, tmp_path):
    access = tmp_path / "access.log"
    proc, port = servers.start(["-w", "1", "--access-logfile", str(access),
                                "--access-logformat", '{"r": "%(r)s", "a": "%(a)s"}'])
    agent = 'ua "quoted" back\\slash\ttab \u00e9nd'
    status, body = http_get(port, "/env", headers={"User-Agent": agent})
    assert status == 200
    assert json.loads(body.decode())["HTTP_USER_AGENT"] == agent
    status, _ = http_get(port, '/p"q\\r', headers={"User-Agent": "plain"})
    assert status == 200
    # A control character the parser refuses: the 400 is logged, still JSON.
    response = raw_exchange(port, b"GET /bad HTTP/1.1\r\nHost: x\r\n"
                            b"User-Agent: a\x01b\r\nConnection: close\r\n\r\n")
    assert status_code(response) == 400, response

    wait_for(lambda: read_text(access).count("\n") >= 3, 5)
    records = [json.loads(line) for line in read_text(access).splitlines()]
    assert records[0] == {"r": "GET /env HTTP/1.1", "a": agent}
    assert records[1] == {"r": 'GET /p"q\\r HTTP/1.1', "a": "plain"}
    assert len(records) == 3 and sorted(records[2]) == ["a", "r"]


# -- 8. statsd --------------------------------------------------------------------

def test_statsd_metrics(servers):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as metrics:
        metrics.bind(("127.0.0.1", 0))
        proc, port = servers.start(["-w", "1", "--statsd-host",
                                    "127.0.0.1:%d" % metrics.getsockname()[1]])
        assert http_get(port)[0] == 200
        lines = set()
        wanted = ("gunicorn.requests:1|c", "gunicorn.request.status.200:1|c")

        def all_seen(datagram):
            lines.update(datagram.split("\n"))
            return all(w in lines for w in wanted) and \
                any(re.fullmatch(r"gunicorn\.workers:\d+\|g", line) for line in lines)
        receive_until(metrics, all_seen, 5)
        assert any(line.startswith("gunicorn.request.duration:") for line in lines)


# -- 9, 10. --boot-timeout, --max-worker-memory -----------------------------------

SLOW_BOOT_APP = '''
import os, time
_deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(os.path.dirname(__file__), "never-created")) \\
        and time.monotonic() < _deadline:
    time.sleep(0.05)


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"booted"]
'''


def test_boot_timeout_stops_the_server_promptly(servers, tmp_path):
    # The worker is stuck importing the app, so it can not stop gracefully:
    # the master must not wait out --graceful-timeout (30 s by default).
    (tmp_path / "slowboot.py").write_text(SLOW_BOOT_APP)
    started = time.monotonic()
    proc, _ = servers.start(["-w", "1", "--boot-timeout", "1"], app="slowboot:app")
    wait_for(lambda: proc.poll() is not None, 6,
             message=lambda: "log:\n" + read_text(servers.log))
    assert proc.returncode == 3                     # WORKER_BOOT_ERROR
    assert time.monotonic() - started < 6
    log = read_text(servers.log)
    assert re.search(r"Worker \(pid:\d+\) did not boot within 1s", log), log
    assert "Reason: Worker boot timeout." in log


def test_max_worker_memory_recycles_the_worker(servers):
    proc, port = servers.start(["-w", "1", "--max-worker-memory", "1"])
    first, master = served_by(port)
    assert master == proc.pid
    wait_for_log(servers.log, "recycling")
    second, master = served_by(port)
    assert second != first and master == proc.pid
    log = wait_for_log(servers.log, "Worker (pid:%d) exited (recycled: memory)" % first)
    assert "Worker (pid:%d) RSS" % first in log


# -- 11, 12. --check-config, --print-config ---------------------------------------

def run_arbiter(args, cwd, timeout=20):
    return subprocess.run([sys.executable, ARBITER] + list(args), cwd=str(cwd),
                          env=server_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def test_check_config_warns_about_gunicorn_only_settings(tmp_path):
    config = tmp_path / "ops.conf.py"
    config.write_text('threads = 4\nhttp_protocols = "h1"\n')
    result = run_arbiter(["--check-config", "-c", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert any("'threads'" in line for line in warnings), result.stderr
    assert any("'http_protocols'" in line for line in warnings), result.stderr


def test_check_config_refuses_a_misspelt_setting(tmp_path):
    config = tmp_path / "ops.conf.py"
    config.write_text("workrs = 2\n")
    result = run_arbiter(["--check-config", "-c", str(config)], tmp_path)
    assert result.returncode == 1
    assert "did you mean 'workers'" in result.stderr, result.stderr
    assert "workrs" in result.stderr


def test_print_config_shows_the_resolved_workers(tmp_path):
    result = run_arbiter(["--print-config", "-w", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^workers\s+= 3$", result.stdout, re.M), result.stdout
    assert re.search(r"^bind\s+= ", result.stdout, re.M), result.stdout


# -- 13. daemon mode with a pidfile -----------------------------------------------

def test_daemon_with_pidfile(servers, tmp_path):
    pidfile = tmp_path / "ops.pid"
    errorlog = tmp_path / "daemon.log"
    launcher, port = servers.start(["-D", "-p", str(pidfile), "-w", "1",
                                    "--error-logfile", str(errorlog)])
    launcher.wait(timeout=5)
    assert launcher.returncode == 0
    pid = wait_for(lambda: read_pidfile(pidfile), 10,
                   message=lambda: read_text(errorlog))
    servers.track(pid)
    assert pid != launcher.pid
    assert pid_alive(pid)
    # Detached: a new session (not the launcher's), of which it is not the
    # leader (the second fork), so it can never get a controlling terminal.
    assert os.getsid(pid) not in (pid, launcher.pid, os.getsid(0))
    worker, master = served_by(port)
    assert master == pid

    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pidfile.exists(), 10, message=lambda: read_text(errorlog))
    wait_for(lambda: not pid_alive(pid), 10)
    wait_for(lambda: not pid_alive(worker), 5)
    assert "Shutting down: Master" in read_text(errorlog)


# -- 14. --reload ----------------------------------------------------------------

RELOAD_APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s"]
'''


def test_reload_picks_up_a_changed_module(servers, tmp_path):
    module = tmp_path / "reloadapp.py"
    module.write_text(RELOAD_APP % "v1")
    proc, port = servers.start(["-w", "1", "--reload"], app="reloadapp:app")
    assert http_get(port) == (200, b"v1")
    module.write_text(RELOAD_APP % "v2")
    later = os.stat(str(module)).st_mtime + 10
    os.utime(str(module), (later, later))
    wait_for(lambda: http_get(port) == (200, b"v2"), 10,
             message=lambda: read_text(servers.log))
    assert "reloadapp.py modified" in read_text(servers.log)
    assert proc.poll() is None


# -- 15. USR2 re-exec of "python -m arbiter" ----------------------------------------

def test_usr2_reexec_of_python_dash_m(servers, tmp_path):
    pidfile = tmp_path / "ops.pid"
    env = server_env(PYTHONPATH=os.path.dirname(ARBITER))
    old, port = servers.start(["-w", "1", "-p", str(pidfile)], env=env, module=True)
    assert wait_for(lambda: read_pidfile(pidfile)) == old.pid
    assert served_by(port)[1] == old.pid

    os.kill(old.pid, signal.SIGUSR2)
    new = wait_for(lambda: read_pidfile(str(pidfile) + ".2"), 10,
                   message=lambda: read_text(servers.log))
    servers.track(new)
    assert new != old.pid
    # The new master has a worker of its own on the inherited socket.
    wait_for_log(servers.log, re.compile(r"\[%d\] \[INFO\] Listening at: http://127\.0\.0\.1:%d"
                                         % (new, port)))
    wait_for(lambda: read_text(servers.log).count("Booting worker") >= 2, 10,
             message=lambda: read_text(servers.log))

    os.kill(old.pid, signal.SIGTERM)
    wait_for(lambda: old.poll() is not None, 10)
    assert old.returncode == 0
    assert wait_for(lambda: read_pidfile(pidfile) == new and
                    not os.path.exists(str(pidfile) + ".2"), 10,
                    message=lambda: read_text(servers.log))
    assert pid_alive(new)
    wait_for(lambda: served_by(port)[1] == new, 10)
    assert "Master has been promoted." in read_text(servers.log)
