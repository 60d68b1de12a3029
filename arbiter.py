#!/usr/bin/env python3
"""arbiter.py -- a pre-fork WSGI HTTP server in one standard-library file.

Copy this file next to your application and run it the way you would run
gunicorn::

    python arbiter.py -w 4 -b 0.0.0.0:8000 myproject.wsgi:application

The command line, the setting names, the config-file format (``-c
gunicorn.conf.py``), the signals, the hooks and the log lines follow
gunicorn's, so an existing ``gunicorn ...`` command line works unchanged.
Without an application argument a small built-in demo app is served.

Sections, in the order of the file:

    Started as a script      rerun_from_bytecode(): python arbiter.py runs
                             the compiled code in a fresh interpreter
    Constants                exit codes, signals, recycle reasons, timings
    Errors                   HaltServer, ConfigError, AppImportError; HTTPError
                             and one subclass per rejection, each with its status
    Configuration            SETTINGS (one row per setting), Config, the hooks,
                             config files, the command line built from the table
    Scoreboard and heartbeat the shared memory master and workers read and write
    The Arbiter              the master: run/start, periodic work, signal
                             handlers, reload and re-exec, workers, fair
                             dispatch, the status endpoint, stop and halt
    The pidfile              Pidfile: created atomically, stale or live
    Listening sockets, TLS   addresses, bind, inherit, close; the SSLContext
    The worker               WorkerRecord (the master's), Worker (the process:
                             its loop and app slots), Connection, bodies in and
                             responses out (IncomingBody, OutputBuffer)
    HTTP/1.1 parsing         the grammar, parse_head() (pure), the PROXY
                             protocol, ChunkedDecoder
    WSGI environ, response   build_environ(), Response, FileWrapper, errors
    App loading              the demo app, module:app and module:factory()
    Logging and metrics      Log (error and access logs), statsd, Prometheus text
    Process helpers          systemd, process titles, user, daemonize, gc.freeze
    Entry points             serve(app, **settings) and main(argv)

Process model and one request's path, with the real names::

    script:  rerun_from_bytecode()   (python arbiter.py: exec a fresh interpreter
                                      on the compiled code, without the syntax tree)
    master:  main() -> load_config() -> Arbiter(cfg).run()
             run(): start() [signals, pidfile, listeners, scoreboard, when_ready]
             loop:  maybe_promote_master() ; do_periodic_work()
                    each queued signal -> handle_<name>()  (a handler only records)
                    reap_workers() ; check_workers() ; hurry_stuck_workers()
                    manage_workers()
                    sleep() on the self-pipe, the status socket and the workers'
                    channels -> pass_connections_on() (fair dispatch);
                    the status socket -> answer_status(): status() as JSON,
                    or metrics() (GET /metrics, Prometheus' text format)
    worker:  spawn_worker(): WorkerRecord (the master's) -> fork
             -> Worker(record).run()   (never returns: os._exit)
             run(): init_signals(), load_app(), serve()
             serve(): select(listeners, connections, wake-up pipe, channel)
             -> accept() -> adopt() -> Connection -> serve_connection()
             -> read_request(): Connection.read_head() -> parse_head() -> Request
                                start_body() -> Connection.read_body() -> IncomingBody
             -> an app slot: run_request() in the loop (sync), or dispatch() to
                an app thread (--threads N):
                pre_request -> build_environ() -> app(environ, start_response)
                -> Response.send_result() -> Connection.write() -> post_request
             -> finish_request(): the rest leaves from the OutputBuffer
                (send_rest()), then response_sent(): the access log, and the
                connection waits for its next request, or close_connection()
             a connection whose next request would wait behind a busy worker:
             hand_off() -> master -> take_handed_connections() in a free worker

Each worker is an event loop that owns every client byte, around its app
slots: one (the loop runs the app itself: gunicorn's sync worker) or
``--threads N``. A request reaches the app only once its head and body have
arrived, and a response leaves at the client's pace without holding the
app, so slow, silent or flooding clients can not take a worker away from
everybody else.

Signals, to the master:

    ======  ==============================================================
    HUP     reload the config and the app; replace every worker, new ones
            booted before old ones stop (nothing dropped)
    TERM    graceful stop: finish requests in flight (``--graceful-timeout``)
    INT     quick stop
    QUIT    quick stop
    TTIN    one worker more
    TTOU    one worker less (never below one)
    USR1    reopen the log files (master and workers)
    USR2    re-exec: start a new master on the same listening sockets
    WINCH   gracefully stop the workers, keep the master (use after USR2)
    CHLD    a worker exited: reap it
    ======  ==============================================================
"""

import os
import sys

# ---------------------------------------------------------------------------
# Started as a script: run from bytecode
# ---------------------------------------------------------------------------
# ``python arbiter.py`` compiles this file, and CPython keeps the file's
# syntax tree (about 8 MB) until the script ends, which for a server is never:
# the master and, through fork, every worker would carry it. So before
# anything else the script hands its compiled code to a fresh interpreter:
# the same pid, executable and options, exec'd on a memfd that holds the code
# as a .pyc, with the script's path as the first argument. That costs one
# interpreter start (about 10 ms) and only happens where memfds exist and the
# interpreter reports its options (sys.orig_argv: Python 3.10+); elsewhere
# the script simply carries on.

RERUN_ENV = "ARBITER_PY_RERUN"     # the memfd's number, for the fresh interpreter


def rerun_from_bytecode(code):
    """In ``python arbiter.py``: exec a fresh interpreter on ``code``. Returns
    only when that can not be done."""
    if not (getattr(sys, "orig_argv", None) and sys.executable and
            hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")):
        return
    if getattr(sys, "frozen", False):
        return      # a bundled executable (PyInstaller...) is not a Python to exec
    import marshal
    try:
        # importlib.util.MAGIC_NUMBER, without the few ms importlib.util takes
        magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    except (KeyError, AttributeError):
        from importlib.util import MAGIC_NUMBER as magic
    try:
        fd = os.memfd_create("arbiter.py", 0)      # not close-on-exec
    except OSError:
        return
    try:
        # A .pyc: the magic number, 12 bytes the interpreter skips, the code.
        remaining = memoryview(magic + bytes(12) + marshal.dumps(code))
        while remaining:
            remaining = remaining[os.write(fd, remaining):]
        path = "/proc/self/fd/%d" % fd
        if not os.access(path, os.R_OK):    # the new interpreter must open it
            raise OSError("can not reopen the memfd")
        options = sys.orig_argv[1:len(sys.orig_argv) - len(sys.argv)]
        os.environ[RERUN_ENV] = str(fd)
        os.execv(sys.executable, [sys.executable, *options, path, *sys.argv])
    except (OSError, ValueError):
        os.environ.pop(RERUN_ENV, None)
        os.close(fd)


def look_like_the_script():
    """In the interpreter rerun_from_bytecode() started: close the memfd and
    put the script back where Python would have it (argv, orig_argv for a
    USR2 re-exec, __file__, the path entry of its directory)."""
    os.close(int(os.environ.pop(RERUN_ENV)))
    script = sys.argv.pop(1)
    sys.argv[0] = script
    at = len(sys.orig_argv) - len(sys.argv) - 1       # where the memfd's path is
    sys.orig_argv[at:at + 2] = [script]
    globals()["__file__"] = os.path.abspath(script)
    if not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)):
        sys.path[0] = os.path.dirname(os.path.realpath(script))


if __name__ == "__main__" and sys._getframe().f_back is None:
    # Run by the interpreter itself, not by runpy (-m), a debugger or exec().
    if os.environ.get(RERUN_ENV) and sys.argv[0] == "/proc/self/fd/" + os.environ[RERUN_ENV]:
        look_like_the_script()
    else:
        rerun_from_bytecode(sys._getframe().f_code)

# The server's own imports: below the rerun, which needs only os and sys.
import _thread
import bisect
import collections
import errno
import importlib
import io
import logging
import mmap
import re
import select
import selectors
import signal
import socket
import stat
import struct
import time
import traceback

# Modules needed only by some settings or inputs (ssl, json, logging.config,
# difflib, ipaddress, urllib.parse, random, resource, ast, shlex, binascii)
# are imported where they are used: every module the master imports is
# resident in every worker, and ssl alone weighs several MB.
ssl = None      # the ssl module, once enable_tls() has imported it

__version__ = "0.1.0"

__all__ = [
    "Arbiter", "Worker", "WorkerRecord", "Config", "Pidfile", "Request", "Response",
    "IncomingBody", "ChunkedDecoder", "FileWrapper", "HTTPError", "HaltServer", "ConfigError",
    "AppImportError", "SETTINGS", "load_config", "load_app", "parse_head",
    "build_environ", "parse_address", "serve", "main",
]


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

# The Server header and SERVER_SOFTWARE: the name without the version, which
# would tell a scanner which bugs to try (gunicorn sends "gunicorn").
SERVER_SOFTWARE = "arbiter.py"

# Exit codes of a worker, read by the master (the same numbers as gunicorn's).
WORKER_BOOT_ERROR = 3
APP_LOAD_ERROR = 4

# The master's signals, in the order of the table in the docstring.
MASTER_SIGNALS = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1",
                  "USR2", "WINCH", "CHLD")
SIGNAL_NAMES = {getattr(signal, "SIG" + name): name.lower()
                for name in MASTER_SIGNALS}

# Why a worker asks to be replaced (a byte in its scoreboard slot).
RECYCLE_MAX_REQUESTS = 1
RECYCLE_MEMORY = 2
RECYCLE_TIMEOUT = 3         # threaded: an app thread overran --timeout
RECYCLE_REASONS = {RECYCLE_MAX_REQUESTS: "max requests", RECYCLE_MEMORY: "memory",
                   RECYCLE_TIMEOUT: "timeout"}
# Why a worker exited, as arbiter_worker_restarts_total labels it: the three
# recycle reasons, or the master's doing (HUP's new generation, or --reload;
# TTOU, WINCH, a stop), or the worker's own failure.
RECYCLE_CAUSES = {code: reason.replace(" ", "_") for code, reason in RECYCLE_REASONS.items()}
RESTART_CAUSES = tuple(RECYCLE_CAUSES.values()) + ("crash", "reload", "stopped")
# The generation of a worker that asked to be replaced: older than any.
OUTDATED = -1
# A worker's state in its scoreboard slot's booted byte (0: booting).
SERVING, DRAINING = 1, 2

# How long the master waits between a SIGABRT (stack dump) and SIGKILL to a
# worker that timed out: long enough for a Python stack to reach the log.
ABORT_GRACE = 1.0
# A draining worker closes a parked connection that stays idle this long.
DRAIN_IDLE_GRACE = 0.5
# A client of --status-bind has this long, in all, to send its request and
# take the answer; the master serves at most STATUS_CLIENTS_MOST at once (a
# new one beyond closes the oldest), from its select loop, never blocking.
STATUS_CLIENT_TIMEOUT = 1.0
STATUS_CLIENTS_MOST = 16
STATUS_HEAD_MOST = 8192     # of a status client's request: all we read of it
# Workers that die as they start (before they boot, or within
# FAILED_START_WINDOW seconds) delay the next spawn: 0.1 s, doubling with each
# one in a row up to SPAWN_BACKOFF_MAX, instead of a fork storm. Never more
# than BOOTING_MOST workers boot at once (a burst of TTIN can not fork
# hundreds of processes in one go); TTIN stops at WORKERS_MOST.
FAILED_START_WINDOW = 2.0
SPAWN_BACKOFF_MIN, SPAWN_BACKOFF_MAX = 0.1, 10.0
BOOTING_MOST = 8
WORKERS_MOST = 512      # half the scoreboard's slots: a reload can still double them
READ_SIZE = 65536
# The most one sendfile() call is asked for: Linux moves at most ~2 GiB per
# call anyway, and a count must fit the C types of every platform.
SENDFILE_MOST = 1 << 30
# A request body kept in memory from this size on is an mmap (see IncomingBody).
MMAP_BODY_SIZE = 128 * 1024

# What a non-blocking socket raises when it must wait; enable_tls() adds
# the ssl module's own want-read and want-write errors.
WANT_READ = (BlockingIOError,)
WANT_WRITE = ()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class HaltServer(Exception):
    """Raised in the master to stop the server with an exit status."""

    def __init__(self, reason, exit_status=1):
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status


class ConfigError(Exception):
    """A setting, a config file or the command line is wrong."""


class SettingError(ConfigError):
    """One setting's value is wrong (load_config names the flag when the
    value came from the command line)."""

    def __init__(self, name, problem):
        super().__init__("%s: %s" % (name, problem))
        self.name = name
        self.problem = problem


class AppImportError(Exception):
    """The application named on the command line can not be loaded.

    ``exit_status`` is the worker's, as in gunicorn: WORKER_BOOT_ERROR (3)
    when the app's module fails to import, APP_LOAD_ERROR (4) when the
    module has no such app or the factory fails.
    """

    def __init__(self, message, exit_status=APP_LOAD_ERROR):
        super().__init__(message)
        self.exit_status = exit_status


class HTTPError(Exception):
    """A request that is answered with an error page; ``status`` says which.

    Every rejection is a subclass, so the one function that turns an
    exception into a response (``error_page(exc.status)``, sent by
    Worker.reject or Worker.handle_error) needs no isinstance ladder. After an HTTPError the connection is always closed: nothing
    that follows a bad request is read as a new request.
    """

    status = 400
    # The server's own trouble (the same for every client that meets it),
    # not the client's mistake: logged once per interval, with a count.
    server_side = False

    def __init__(self, detail=""):
        super().__init__(detail or self.__doc__)
        self.detail = detail or self.__doc__


class BadRequest(HTTPError):
    """Bad request"""


class RequestTimeout(HTTPError):
    """The request did not arrive in time"""
    status = 408


class URITooLong(HTTPError):
    """Request line too long"""
    status = 414


class HeadersTooLarge(HTTPError):
    """Request header fields too large"""
    status = 431


class Unsupported(HTTPError):
    """Not implemented"""
    status = 501


class VersionNotSupported(HTTPError):
    """HTTP version not supported"""
    status = 505


class Forbidden(HTTPError):
    """Forbidden"""
    status = 403


class ContentTooLarge(HTTPError):
    """Content too large"""
    status = 413


class NoRoomForBody(HTTPError):
    """The server has no room for the request body now (its temporary file
    can not be made or written: a full disk, a tmp dir it may not write)"""
    status = 503
    server_side = True


class ClientGone(Exception):
    """The peer closed or reset the connection: there is nobody to answer."""


class ResponseError(Exception):
    """The application broke a rule of PEP 3333 or of HTTP in its response."""


# ---------------------------------------------------------------------------
# Configuration: one table of settings, the hooks, config files, the CLI
# ---------------------------------------------------------------------------

def to_int(value):
    """An integer, 0 or more; a string may say 0x10 or 0o22 (a umask)."""
    return to_non_negative(value, lambda v: int(v, 0) if isinstance(v, str) else int(v),
                           "not an integer")


def to_float(value):
    return to_non_negative(value, float, "not a number")


def to_non_negative(value, convert, complaint):
    """``convert(value)``; a ConfigError if that fails or is below zero."""
    try:
        number = convert(value)
    except (TypeError, ValueError):
        raise ConfigError("%s: %r" % (complaint, value)) from None
    if number < 0:
        raise ConfigError("must not be negative: %r" % (value,))
    return number


def to_workers(value):
    """An integer, or ``auto``: the CPUs this process may use (see cpu_quota)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return max(1, cpu_quota())
    return at_least_one(to_int(value), "worker")


def to_threads(value):
    return at_least_one(to_int(value), "thread")


def at_least_one(number, what):
    if number < 1:
        raise ConfigError("at least one %s is needed" % what)
    return number


def to_bool(value):
    if isinstance(value, bool) or value is None:  # None: "the default" (gunicorn's sendfile)
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "y"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off", "n"):
        return False
    raise ConfigError("not a boolean: %r" % (value,))


def to_str(value):
    if value is None or isinstance(value, str):
        return value
    raise ConfigError("not a string: %r" % (value,))


def to_user_or_group(value):
    """A name or a numeric id (gunicorn's default is our own euid/egid)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return to_str(value)


def to_list(value):
    """A list of strings; a string is a comma-separated list (gunicorn's rule)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError("not a list of strings: %r" % (value,))


class AddressList(list):
    """``forwarded_allow_ips``, ``proxy_allow_ips``: addresses as strings
    (matched as such, the fast path), and ``networks``, the CIDR entries
    (``10.0.0.0/8``, ``fd00::/8``) parsed once, here, as gunicorn allows."""

    def __init__(self, items=()):
        super().__init__(items)
        self.networks = ()
        cidrs = [item for item in self if "/" in item]
        if cidrs:
            import ipaddress
            try:
                self.networks = tuple(ipaddress.ip_network(item) for item in cidrs)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None


def to_address_list(value):
    return AddressList(to_list(value))


def to_str_list(value):
    """A list of strings where a plain string is one item (binds, env)."""
    if isinstance(value, str):
        return [value]
    return to_list(value)


def to_env_list(value):
    """``raw_env``: KEY=VALUE strings; empty ones are skipped (a config file's
    ``os.environ.get("EXTRA", "").split(",")`` gives one)."""
    items = [item for item in to_str_list(value) if item.strip()]
    for item in items:
        if "=" not in item:
            raise ConfigError("not KEY=VALUE: %r" % item)
    return items


def to_dict(value):
    if isinstance(value, dict):
        return dict(value)
    raise ConfigError("not a dict: %r" % (value,))


def to_choice(*choices):
    def convert(value):
        if value is True and "auto" in choices:
            value = "auto"  # gunicorn's boolean form of a mode setting
        if value is False and "off" in choices:
            value = "off"
        if isinstance(value, str) and value.lower() in choices:
            return value.lower()
        raise ConfigError("%r is not one of %s" % (value, ", ".join(choices)))
    return convert


def to_callable(value):
    if isinstance(value, str):
        value = import_string(value)
    if not callable(value):
        raise ConfigError("not callable: %r" % (value,))
    return value


# The worker classes of gunicorn that this server provides, by every name
# gunicorn accepts for them. "gthread" is the sync worker with --threads
# app slots (gunicorn runs a sync worker with threads > 1 as gthread, too).
WORKER_CLASSES = {
    "sync": "sync", "#sync": "sync", "egg:gunicorn#sync": "sync",
    "gunicorn.workers.sync.SyncWorker": "sync",
    "gthread": "gthread", "#gthread": "gthread", "egg:gunicorn#gthread": "gthread",
    "gunicorn.workers.gthread.ThreadWorker": "gthread",
}


def to_worker_class(value):
    """gunicorn's names of the workers that exist here -> "sync" or
    "gthread"; another class is kept as given (load_config warns, and the
    sync worker serves)."""
    value = to_str(value)
    return WORKER_CLASSES.get(value, value)


def ignored(value):
    """The converter of gunicorn settings that mean nothing here."""
    return value


def no_hook(*args):
    """The default of every server hook but pre_request: do nothing."""


def call_hook(server, name, *args):
    """Run the hook ``name`` of ``server`` (the Arbiter, or a Worker), which
    it gets first, as gunicorn's hooks do: ``pre_fork(server, worker)``. An
    exception in it is logged, not fatal. (post_worker_init and pre_request
    are called directly: a failure there is a boot error, or a 500, as in
    gunicorn.)"""
    try:
        getattr(server.cfg, name)(server, *args)
    except Exception:
        server.log.exception("Exception in the %s hook", name)


def log_request_start(worker, req):
    """The default pre_request hook, as gunicorn's: the request at debug level."""
    worker.log.debug("%s %s", req.method, req.path)


def default_workers(environ):
    return to_workers(environ.get("WEB_CONCURRENCY", 1))


def default_bind(environ):
    if "PORT" in environ:
        return ["0.0.0.0:%s" % environ["PORT"]]
    return ["127.0.0.1:8000"]


def default_forwarded_allow_ips(environ):
    return to_address_list(environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))


Setting = collections.namedtuple("Setting", "name flags default convert help")

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# The same line, by position (Log.access formats the default without a dict).
DEFAULT_ACCESS_LINE = '%s - %s %s "%s" %s %s "%s" "%s"'

# One row per setting: the name (as in gunicorn and in config files), the
# command-line flags, the default (a callable takes the environment), the
# converter, the help. Hooks are settings without flags.
SETTINGS = (
    Setting("config", ("-c", "--config"), None, to_str,
            "The config file: a path, or python:MODULE. Default ./gunicorn.conf.py if it exists."),
    Setting("wsgi_app", (), None, to_str, "The WSGI app, MODULE:NAME."),
    Setting("bind", ("-b", "--bind"), default_bind, to_str_list,
            "Address to listen on: HOST, HOST:PORT, [V6]:PORT, unix:PATH or fd://N. Repeatable."),
    Setting("backlog", ("--backlog",), 2048, to_int, "The listen queue length."),
    Setting("workers", ("-w", "--workers"), default_workers, to_workers,
            "Number of worker processes, or 'auto' for the CPUs this container may use."),
    Setting("worker_class", ("-k", "--worker-class"), "sync", to_worker_class,
            "Worker type: 'sync' or 'gthread' (sync with --threads app slots); "
            "others (gevent, uvicorn, ...) warn and run as 'sync'."),
    Setting("threads", ("--threads",), 1, to_threads,
            "App threads per worker (gunicorn's gthread): N requests at once in each "
            "worker. 1: one at a time, run by the worker's loop itself."),
    Setting("worker_connections", ("--worker-connections",), 1000, to_int,
            "Most connections one worker keeps open (idle keep-alive ones included)."),
    Setting("max_requests", ("--max-requests",), 0, to_int,
            "Restart a worker after this many requests (0: never)."),
    Setting("max_requests_jitter", ("--max-requests-jitter",), 0, to_int,
            "Add up to this many to max_requests, at random per worker."),
    Setting("timeout", ("-t", "--timeout"), 30, to_int,
            "Seconds a request may spend in the app (its stack is logged, the worker "
            "replaced); also how long a stuck worker lives. 0: no limit."),
    Setting("graceful_timeout", ("--graceful-timeout",), 30, to_int,
            "Seconds a stopping worker may take to finish its requests."),
    Setting("shutdown_delay", ("--shutdown-delay",), 0.0, to_float,
            "On TERM, keep serving this many seconds before stopping (the status "
            "endpoint says 'draining' meanwhile), so load balancers can deregister us."),
    Setting("boot_timeout", ("--boot-timeout",), 0, to_int,
            "Stop the server if a worker has not booted after this many seconds (0: off)."),
    Setting("max_worker_memory", ("--max-worker-memory",), 0, to_int,
            "Recycle a worker whose RSS passed this many MB, after its request (0: off)."),
    Setting("status_bind", ("--status-bind",), None, to_str,
            "Address where the master answers a tiny HTTP status/health endpoint."),
    Setting("keepalive", ("--keep-alive",), 2, to_int,
            "Seconds to keep an idle keep-alive connection open (0: no keep-alive)."),
    Setting("limit_request_line", ("--limit-request-line",), 4094, to_int,
            "Longest request line in bytes (414 beyond)."),
    Setting("limit_request_fields", ("--limit-request-fields",), 100, to_int,
            "Most header fields in a request (431 beyond)."),
    Setting("limit_request_field_size", ("--limit-request-field_size",), 8190, to_int,
            "Longest header field line in bytes (431 beyond)."),
    Setting("limit_request_head", ("--limit-request-head",), 32768, to_int,
            "Largest request head (request line and header fields) in bytes (431 beyond; "
            "0: only the line and field limits). Each connection holds at most this much "
            "of a head that is still arriving."),
    Setting("limit_request_body", ("--limit-request-body",), 1 << 30, to_int,
            "Largest request body in bytes (413 beyond; 0: no limit)."),
    Setting("body_buffer_size", ("--body-buffer-size",), 1 << 20, to_int,
            "Bytes of a request body kept in memory; a larger body waits for the app in "
            "a temporary file (in --tmp-upload-dir)."),
    Setting("body_memory_limit", ("--body-memory-limit",), 64 << 20, to_int,
            "Most bytes of request bodies one worker holds in memory at once, over all "
            "its connections; beyond, bodies wait in temporary files."),
    Setting("send_buffer_size", ("--send-buffer-size",), 1 << 20, to_int,
            "Bytes of a response that a slow client has not taken yet kept in memory per "
            "connection; more go to a temporary file."),
    Setting("send_spool_size", ("--send-spool-size",), 32 << 20, to_int,
            "Most bytes of a response held for a slow client (memory and file): beyond, "
            "the app waits for the client (at --send-min-rate)."),
    Setting("head_timeout", ("--head-timeout",), 20.0, to_float,
            "Seconds a request head may take to arrive (408 beyond; 0: no limit)."),
    Setting("body_timeout", ("--body-timeout",), 20.0, to_float,
            "Seconds a request body may take, plus one for every --body-min-rate bytes "
            "received (408 beyond; 0: no limit)."),
    Setting("body_min_rate", ("--body-min-rate",), 500, to_int,
            "Bytes per second a slow upload must keep up, past --body-timeout "
            "(0: the body must arrive within --body-timeout)."),
    Setting("send_timeout", ("--send-timeout",), 20.0, to_float,
            "Seconds a client may take to read a response, plus one for every "
            "--send-min-rate bytes it took (closed beyond; 0: no limit)."),
    Setting("send_min_rate", ("--send-min-rate",), 500, to_int,
            "Bytes per second a slow reader must keep up, past --send-timeout "
            "(0: the response must leave within --send-timeout)."),
    Setting("reload", ("--reload",), False, to_bool, "Restart workers when code changes."),
    Setting("reload_extra_files", ("--reload-extra-file",), [], to_str_list,
            "Extra files to watch with --reload. Repeatable."),
    Setting("check_config", ("--check-config",), False, to_bool,
            "Check the configuration and the app, then exit."),
    Setting("print_config", ("--print-config",), False, to_bool,
            "Print the resolved settings, then exit."),
    Setting("strict_config", ("--strict-config",), False, to_bool,
            "A name in the config file that is not a setting but close to one "
            "(a likely typo) is an error, not a warning."),
    Setting("preload_app", ("--preload",), False, to_bool,
            "Load the app in the master before forking the workers."),
    Setting("sendfile", ("--no-sendfile",), True, to_bool,
            "Do not use sendfile() for wsgi.file_wrapper."),
    Setting("reuse_port", ("--reuse-port",), False, to_bool, "Set SO_REUSEPORT on listeners."),
    Setting("chdir", ("--chdir",), None, to_str, "Change to this directory before loading the app."),
    Setting("daemon", ("-D", "--daemon"), False, to_bool, "Detach from the terminal."),
    Setting("raw_env", ("-e", "--env"), [], to_env_list,
            "Set KEY=VALUE in the environment. Repeatable."),
    Setting("pidfile", ("-p", "--pid"), None, to_str, "Write the master's pid to this file."),
    Setting("worker_tmp_dir", ("--worker-tmp-dir",), None, to_str,
            "Accepted for compatibility: the heartbeat is in shared memory, no file."),
    Setting("user", ("-u", "--user"), None, to_user_or_group,
            "Run workers as this user (name or id)."),
    Setting("group", ("-g", "--group"), None, to_user_or_group,
            "Run workers as this group (name or id)."),
    Setting("umask", ("-m", "--umask"), 0, to_int, "umask for files the server writes (unix sockets)."),
    Setting("initgroups", ("--initgroups",), False, to_bool,
            "Set the workers' supplementary groups from the user's groups."),
    Setting("tmp_upload_dir", ("--tmp-upload-dir",), None, to_str,
            "Directory for the temporary files of large bodies and slow clients' "
            "responses (default $TMPDIR or /tmp)."),
    Setting("secure_scheme_headers", (), {"X-FORWARDED-PROTOCOL": "ssl",
                                          "X-FORWARDED-PROTO": "https",
                                          "X-FORWARDED-SSL": "on"}, to_dict,
            "Headers (from trusted proxies) that mean the request came over https."),
    Setting("forwarded_allow_ips", ("--forwarded-allow-ips",), default_forwarded_allow_ips,
            to_address_list, "Proxies (addresses or CIDR networks) trusted for "
            "secure_scheme_headers and forwarder headers ('*': all)."),
    Setting("forwarder_headers", ("--forwarder-headers",), ["SCRIPT_NAME", "PATH_INFO"],
            to_list, "Header names (with '_') that a trusted proxy may use to set these "
            "environ keys, e.g. SCRIPT_NAME."),
    Setting("accesslog", ("--access-logfile",), None, to_str, "The access log file ('-': stdout)."),
    Setting("access_log_format", ("--access-logformat",), DEFAULT_ACCESS_LOG_FORMAT, to_str,
            "The access log format (gunicorn's atoms)."),
    Setting("errorlog", ("--error-logfile", "--log-file"), "-", to_str,
            "The error log file ('-': stderr)."),
    Setting("loglevel", ("--log-level",), "info",
            to_choice("debug", "info", "warning", "error", "critical"), "The error log level."),
    Setting("logconfig", ("--log-config",), None, to_str,
            "A logging config file (logging.config.fileConfig format)."),
    Setting("logconfig_json", ("--log-config-json",), None, to_str,
            "A logging config as a JSON file (dictConfig schema)."),
    Setting("logconfig_dict", (), {}, to_dict, "A logging config dict (dictConfig schema)."),
    Setting("syslog", ("--log-syslog",), False, to_bool, "Send the logs to syslog too."),
    Setting("syslog_addr", ("--log-syslog-to",), "udp://localhost:514", to_str,
            "Syslog address: unix://PATH, udp://HOST:PORT or tcp://HOST:PORT."),
    Setting("syslog_prefix", ("--log-syslog-prefix",), None, to_str,
            "The program name in syslog lines."),
    Setting("syslog_facility", ("--log-syslog-facility",), "user", to_str, "Syslog facility."),
    Setting("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",),
            False, to_bool, "Do not send the access log to syslog."),
    Setting("statsd_host", ("--statsd-host",), None, to_str,
            "HOST:PORT of a statsd server for metrics."),
    Setting("statsd_prefix", ("--statsd-prefix",), "", to_str, "Prefix of every metric."),
    Setting("dogstatsd_tags", ("--dogstatsd-tags",), "", to_str,
            "Comma-separated key:value tags (DogStatsD)."),
    Setting("capture_output", ("--capture-output",), False, to_bool,
            "Send the workers' stdout and stderr to the error log."),
    Setting("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance"), False, to_bool,
            "Keep stdio open in daemon mode."),
    Setting("proc_name", ("-n", "--name"), None, to_str, "The process title base name."),
    Setting("default_proc_name", (), "arbiter", to_str, "The process title when no name is set."),
    Setting("pythonpath", ("--pythonpath",), None, to_str,
            "Comma-separated directories to add to sys.path."),
    Setting("permit_obsolete_folding", ("--permit-obsolete-folding",), False, to_bool,
            "Accept obs-fold header continuation lines (joined with a space)."),
    Setting("strip_header_spaces", ("--strip-header-spaces",), False, to_bool,
            "Accept whitespace between a header name and its colon (dangerous)."),
    Setting("permit_unconventional_http_method", ("--permit-unconventional-http-method",),
            False, to_bool, "Accept any token as a method, not only upper-case 3-20 chars."),
    Setting("casefold_http_method", ("--casefold-http-method",), False, to_bool,
            "Upper-case the method before checking it."),
    Setting("proxy_protocol", ("--proxy-protocol",), "off",
            to_choice("off", "v1", "v2", "auto"),
            "Expect a PROXY protocol header: off, v1, v2 or auto (optional, either version)."),
    Setting("proxy_allow_ips", ("--proxy-allow-from",), ["127.0.0.1", "::1"], to_address_list,
            "Addresses or CIDR networks allowed to send a PROXY protocol header ('*': all)."),
    Setting("certfile", ("--certfile",), None, to_str, "TLS certificate file (PEM)."),
    Setting("keyfile", ("--keyfile",), None, to_str, "TLS private key file (PEM)."),
    Setting("ca_certs", ("--ca-certs",), None, to_str, "CA certificates to verify clients."),
    Setting("cert_reqs", ("--cert-reqs",), 0, to_int,
            "Client certificates: 0 none, 1 optional, 2 required."),
    Setting("ciphers", ("--ciphers",), None, to_str, "TLS ciphers (OpenSSL syntax)."),
    Setting("ssl_version", ("--ssl-version",), None, lambda v: v,
            "Ignored: the TLS versions are the ssl module's safe defaults (as gunicorn 21+)."),
    Setting("do_handshake_on_connect", ("--do-handshake-on-connect",), False, to_bool,
            "Accepted for compatibility: the handshake always runs before the request, "
            "in the selector, under a deadline."),
    Setting("suppress_ragged_eofs", ("--suppress-ragged-eofs",), True, to_bool,
            "Treat a TLS EOF without close_notify as a normal EOF."),
    Setting("header_map", ("--header-map",), "drop", to_choice("drop", "refuse", "dangerous"),
            "Header names with '_': drop them, refuse the request, or pass them on."),
    # Server hooks, with gunicorn's signatures.
    Setting("on_starting", (), no_hook, to_callable, "on_starting(server)"),
    Setting("on_reload", (), no_hook, to_callable, "on_reload(server)"),
    Setting("when_ready", (), no_hook, to_callable, "when_ready(server)"),
    Setting("pre_fork", (), no_hook, to_callable, "pre_fork(server, worker)"),
    Setting("post_fork", (), no_hook, to_callable, "post_fork(server, worker)"),
    Setting("post_worker_init", (), no_hook, to_callable, "post_worker_init(worker)"),
    Setting("worker_int", (), no_hook, to_callable, "worker_int(worker)"),
    Setting("worker_abort", (), no_hook, to_callable, "worker_abort(worker)"),
    Setting("pre_exec", (), no_hook, to_callable, "pre_exec(server)"),
    Setting("pre_request", (), log_request_start, to_callable, "pre_request(worker, req)"),
    Setting("post_request", (), no_hook, to_callable, "post_request(worker, req, environ, resp)"),
    Setting("child_exit", (), no_hook, to_callable, "child_exit(server, worker)"),
    Setting("worker_exit", (), no_hook, to_callable, "worker_exit(server, worker)"),
    Setting("nworkers_changed", (), no_hook, to_callable,
            "nworkers_changed(server, new_value, old_value)"),
    Setting("on_exit", (), no_hook, to_callable, "on_exit(server)"),
    Setting("ssl_context", (), lambda config, factory: factory(), to_callable,
            "ssl_context(config, default_ssl_context_factory) -> SSLContext"),
    # gunicorn settings with no meaning here (other workers, ASGI, HTTP/2, paste,
    # dirty arbiters, control socket): accepted so that existing command lines
    # and config files still work, with one warning each, and ignored.
    Setting("reload_engine", ("--reload-engine",), "auto", ignored,
            "Ignored: --reload always polls."),
    Setting("spew", ("--spew",), False, ignored, "Ignored."),
    Setting("logger_class", ("--logger-class",), None, ignored, "Ignored."),
    Setting("enable_backlog_metric", ("--enable-backlog-metric",), False, ignored, "Ignored."),
    Setting("paste", ("--paste", "--paster"), None, ignored, "Ignored (no paste)."),
    Setting("raw_paste_global_conf", ("--paste-global",), [], ignored, "Ignored."),
    Setting("protocol", ("--protocol",), "http", ignored, "Ignored: HTTP only."),
    Setting("uwsgi_allow_ips", ("--uwsgi-allow-from",), None, ignored, "Ignored."),
    Setting("http_protocols", ("--http-protocols",), "h1", ignored, "Ignored: HTTP/1.1 only."),
    Setting("http2_cleartext", ("--http2-cleartext",), "off", ignored, "Ignored."),
    Setting("http2_max_concurrent_streams", ("--http2-max-concurrent-streams",), 100,
            ignored, "Ignored."),
    Setting("http2_initial_window_size", ("--http2-initial-window-size",), 65535, ignored,
            "Ignored."),
    Setting("http2_max_frame_size", ("--http2-max-frame-size",), 16384, ignored, "Ignored."),
    Setting("http2_max_header_list_size", ("--http2-max-header-list-size",), 65536, ignored,
            "Ignored."),
    Setting("permit_unconventional_http_version", ("--permit-unconventional-http-version",),
            False, ignored, "Ignored: only HTTP/1.0 and 1.1 are served."),
    Setting("asgi_loop", ("--asgi-loop",), "auto", ignored, "Ignored (no ASGI)."),
    Setting("asgi_lifespan", ("--asgi-lifespan",), "auto", ignored, "Ignored."),
    Setting("asgi_disconnect_grace_period", ("--asgi-disconnect-grace-period",), 3, ignored,
            "Ignored."),
    Setting("websocket_max_message_size", ("--websocket-max-message-size",), 16777216,
            ignored, "Ignored."),
    Setting("http_parser", ("--http-parser",), "auto", ignored, "Ignored: one parser."),
    Setting("root_path", ("--root-path",), "", ignored, "Ignored (ASGI); use SCRIPT_NAME."),
    Setting("dirty_apps", ("--dirty-app",), [], ignored, "Ignored (no dirty arbiters)."),
    Setting("dirty_workers", ("--dirty-workers",), 0, ignored, "Ignored."),
    Setting("dirty_timeout", ("--dirty-timeout",), 300, ignored, "Ignored."),
    Setting("dirty_threads", ("--dirty-threads",), 1, ignored, "Ignored."),
    Setting("dirty_graceful_timeout", ("--dirty-graceful-timeout",), 30, ignored, "Ignored."),
    Setting("on_dirty_starting", (), None, ignored, "Ignored hook."),
    Setting("dirty_post_fork", (), None, ignored, "Ignored hook."),
    Setting("dirty_worker_init", (), None, ignored, "Ignored hook."),
    Setting("dirty_worker_exit", (), None, ignored, "Ignored hook."),
    Setting("control_socket", ("--control-socket",), None, ignored,
            "Ignored: see --status-bind."),
    Setting("control_socket_mode", ("--control-socket-mode",), 0o600, ignored, "Ignored."),
    Setting("control_socket_disable", ("--no-control-socket",), False, ignored, "Ignored."),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
NOT_APPLICABLE = frozenset(s.name for s in SETTINGS if s.convert is ignored)

class Config:
    """The resolved settings: one attribute per row of SETTINGS."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        for setting in SETTINGS:
            default = setting.default
            if callable(default) and setting.convert is not to_callable:
                default = default(environ)
            elif isinstance(default, (list, dict)):
                default = type(default)(default)
            setattr(self, setting.name, default)
        self.app_uri = None
        self.warnings = []

    def set(self, name, value):
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise ConfigError("unknown setting %r%s" % (name, did_you_mean(name)))
        try:
            value = setting.convert(value)
        except ConfigError as exc:
            raise SettingError(name, str(exc)) from None
        # Set to its default (``threads = 1``), a setting that means nothing
        # here changes nothing either: no warning.
        if setting.convert is ignored and value != setting.default and \
                str(value) != str(setting.default):
            self.warnings.append("setting %r has no effect in arbiter.py; ignored" % name)
        setattr(self, name, value)

    @property
    def name(self):
        return self.proc_name or self.app_uri or self.default_proc_name

    def items(self):
        return [(s.name, getattr(self, s.name)) for s in SETTINGS]


def closest_setting(name):
    """The setting whose name is closest to a misspelt one, or None."""
    import difflib
    close = difflib.get_close_matches(name, list(SETTINGS_BY_NAME), 1, 0.75)
    return close[0] if close else None


def did_you_mean(name):
    close = closest_setting(name)
    return " (did you mean %r?)" % close if close else ""


# -- the command line ------------------------------------------------------
# Read by hand from SETTINGS, with argparse's grammar for these flags:
# ``--flag VALUE``, ``--flag=VALUE``, ``-fVALUE``, ``-f VALUE``, switches
# grouped after one dash (``-Rw4``), an unambiguous prefix of a long flag,
# ``--`` before an APP_MODULE that starts with a dash; on a mistake, the usage
# and exit status 2. Not argparse itself: it and what it imports (gettext,
# locale) would stay resident in the master and so in every worker (about
# half a megabyte each) and cost about 7 ms of every start.

USAGE = "usage: arbiter.py [OPTIONS] [APP_MODULE]"


class UsageError(ConfigError):
    """The command line does not parse (main() prints the usage, exits 2)."""


def command_line_flags():
    """flag -> (setting name, kind); kind is "on", "off" (switches),
    "append" (repeatable), "value", "optional" (a value may follow), or
    "help"/"version"."""
    flags = {"-h": ("help", "help"), "--help": ("help", "help"),
             "-v": ("version", "version"), "--version": ("version", "version")}
    for setting in SETTINGS:
        if setting.convert is to_bool or setting.default is False:
            # A "--no-..." flag turns off a setting that is on by default
            # (--no-sendfile); --no-control-socket sets its setting to True.
            negative = setting.flags and setting.flags[-1].startswith("--no-") \
                and setting.default is True
            kind = "off" if negative else "on"
        elif setting.convert is to_str_list or setting.default == []:
            kind = "append"
        elif setting.name == "proxy_protocol":
            kind = "optional"
        else:
            kind = "value"
        for flag in setting.flags:
            flags[flag] = (setting.name, kind)
    return flags


COMMAND_LINE_FLAGS = command_line_flags()
NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
SWITCHES = ("on", "off", "help", "version")


def is_flag_like(arg):
    """Would argparse take ``arg`` for a flag rather than a value? ("-" and
    negative numbers are values.)"""
    return arg.startswith("-") and arg != "-" and not NEGATIVE_NUMBER.fullmatch(arg)


def parse_command_line(argv):
    """``[OPTIONS] [APP_MODULE]`` -> {setting name: value as given}, holding
    only what was given (so precedence is easy), the app under "app_uri".
    --help and --version print and raise SystemExit(0), as argparse does."""
    given, positional, pending = {}, [], list(argv)
    pending.reverse()                    # pop() takes the next argument
    while pending:
        arg = pending.pop()
        if arg == "--":
            positional.extend(reversed(pending))
            break
        if not is_flag_like(arg):
            positional.append(arg)
            continue
        flag, equals, value = arg.partition("=")
        if arg.startswith("--"):
            flag = complete_long_flag(flag)
        elif flag not in COMMAND_LINE_FLAGS:
            flag, equals, value = arg[:2], "", arg[2:]     # -w4, or -Rw4
        if flag not in COMMAND_LINE_FLAGS:
            raise UsageError("unrecognized arguments: %s" % arg)
        name, kind = COMMAND_LINE_FLAGS[flag]
        if kind in SWITCHES:
            if equals or (value and "-" + value[0] not in COMMAND_LINE_FLAGS):
                raise UsageError("argument %s: ignored explicit argument %r"
                                 % (flag_names(name), value))
            if value:
                pending.append("-" + value)     # -Rw4: the rest are flags too
            if kind == "help":
                print_help()
                raise SystemExit(0)
            if kind == "version":
                print("arbiter.py (version %s)" % __version__)
                raise SystemExit(0)
            given[name] = kind == "on"
            continue
        if not (equals or value):           # the value is the next argument
            if pending and not is_flag_like(pending[-1]):
                value = pending.pop()
            elif kind == "optional":
                value = "auto"
            else:
                raise UsageError("argument %s: expected one argument" % flag_names(name))
        if kind == "append":
            given.setdefault(name, []).append(value)
        else:
            given[name] = value
    if len(positional) > 1:
        raise UsageError("unrecognized arguments: %s" % " ".join(positional[1:]))
    if positional:
        given["app_uri"] = positional[0]
    return given


def flag_names(name):
    """"-w/--workers", as argparse names a setting in its errors."""
    return "/".join(flag for flag, (named, _) in COMMAND_LINE_FLAGS.items() if named == name)


def complete_long_flag(flag):
    """A long flag, or the one flag it is a prefix of (as argparse allows)."""
    if flag in COMMAND_LINE_FLAGS:
        return flag
    matches = [f for f in COMMAND_LINE_FLAGS if f.startswith(flag) and f.startswith("--")]
    if len(matches) > 1:
        raise UsageError("ambiguous option: %s could match %s" % (flag, ", ".join(matches)))
    return matches[0] if matches else flag


def print_help():
    import textwrap
    try:
        width = min(os.get_terminal_size(sys.__stdout__.fileno()).columns, 100) - 2
    except (AttributeError, ValueError, OSError):
        width = 78
    lines = [USAGE, "", "A pre-fork WSGI HTTP server in one file, compatible with gunicorn.",
             "", "positional arguments:",
             "  APP_MODULE            The WSGI app as MODULE:NAME or MODULE:FACTORY(ARGS).",
             "", "options:",
             "  -h, --help            Show this help and exit.",
             "  -v, --version         Show the version and exit."]
    for setting in SETTINGS:
        if not setting.flags:
            continue
        kind = COMMAND_LINE_FLAGS[setting.flags[0]][1]
        metavar = {"on": "", "off": "", "optional": " [MODE]"}.get(
            kind, " " + setting.name.upper())
        heading = "  " + ", ".join(flag + metavar for flag in setting.flags)
        text = textwrap.wrap(setting.help, width - 24)
        if len(heading) <= 22 and text:
            lines.append("%-24s%s" % (heading, text.pop(0)))
        else:
            lines.append(heading)
        lines.extend(" " * 24 + line for line in text)
    print("\n".join(lines))


def read_config_file(path):
    """Run a gunicorn-style Python config file; return its public names."""
    namespace = {"__file__": path, "__name__": "__config__"}
    if path.startswith("python:"):
        try:
            module = importlib.import_module(path[len("python:"):])
        except ImportError as exc:
            raise ConfigError("can not import config module %s: %s" % (path, exc)) from None
        namespace = vars(module)
    else:
        try:
            with open(path, "rb") as f:
                source = f.read()
        except OSError as exc:
            raise ConfigError("can not read config file %s: %s" % (path, exc.strerror)) from None
        try:
            exec(compile(source, path, "exec"), namespace)
        except Exception:
            raise ConfigError("error in config file %s:\n%s"
                              % (path, traceback.format_exc())) from None
    return {k: v for k, v in namespace.items() if not k.startswith("_")}


def apply_config_file(cfg, path):
    """Set every setting the file names. Other names are the file's own
    helpers (gunicorn ignores them: images such as uvicorn-gunicorn-docker
    define ``use_loglevel`` next to ``loglevel``); those close to a setting
    or hook name that the file does not set itself (``use_loglevel`` next
    to ``loglevel`` is no typo) are returned as (name, likely name) for
    load_config, which warns about them, or refuses them under
    --strict-config."""
    names = read_config_file(path)
    suspicious = []
    for name, value in names.items():
        if name in SETTINGS_BY_NAME:
            cfg.set(name, value)
        elif isinstance(value, (type(os), type)):
            continue  # an import, or a class the file uses for itself
        else:
            close = closest_setting(name)
            if close and close not in names and \
                    callable(value) == (SETTINGS_BY_NAME[close].convert is to_callable):
                suspicious.append((name, close))
    return suspicious


def load_config(argv=None, environ=None, config=None):
    """Resolve the settings as gunicorn does: defaults < config file <
    $GUNICORN_CMD_ARGS < command line. ``config`` names the config file
    instead (a reload, after --chdir moved us away from a relative path)."""
    environ = os.environ if environ is None else environ
    cli = parse_command_line(sys.argv[1:] if argv is None else argv)
    from_env = {}
    if environ.get("GUNICORN_CMD_ARGS"):
        import shlex
        from_env = parse_command_line(shlex.split(environ["GUNICORN_CMD_ARGS"]))
    cfg = Config(environ)
    path = config or cli.get("config") or from_env.get("config")
    if path is None and os.path.exists("gunicorn.conf.py"):
        path = "gunicorn.conf.py"
    cli.pop("config", None)
    from_env.pop("config", None)
    suspicious = []
    if path:
        suspicious = apply_config_file(cfg, path)
        cfg.config = path if path.startswith("python:") else os.path.abspath(path)
    app_uri = cfg.wsgi_app
    for given in (from_env, cli):
        if given.get("app_uri") is not None:
            app_uri = given.pop("app_uri")
        for name, value in given.items():
            set_from_command_line(cfg, name, value)
    for name, close in suspicious:
        kind = "hook" if SETTINGS_BY_NAME[close].convert is to_callable else "setting"
        message = "%s: %r is not a %s (did you mean %r?)" % (path, name, kind, close)
        if cfg.strict_config:
            raise ConfigError(message)
        cfg.warnings.append(message + "; ignored")
    if app_uri is not None and not app_uri.strip():
        raise ConfigError("the app name is empty (an unset variable in the command line?); "
                          "name one as MODULE:NAME")
    cfg.app_uri = app_uri
    if cfg.worker_class not in WORKER_CLASSES.values():
        cfg.warnings.append("worker class %r is not available in arbiter.py; the sync worker "
                            "serves instead (see README, 'Differences from gunicorn')"
                            % cfg.worker_class)
        cfg.worker_class = "sync"
    return cfg


# The settings gunicorn's argparse parser reads with ``type=int``: a value
# that is not an integer is a usage error there (exit status 2).
INTEGER_FLAG_CONVERTERS = (to_int, to_workers)


def set_from_command_line(cfg, name, value):
    """cfg.set() for a value given on the command line (or in
    $GUNICORN_CMD_ARGS), whose errors name the flag, as argparse would."""
    convert = SETTINGS_BY_NAME[name].convert
    if convert in INTEGER_FLAG_CONVERTERS and isinstance(value, str) and \
            not (convert is to_workers and value.strip().lower() == "auto"):
        try:
            int(value, 0)
        except ValueError:
            raise UsageError("argument %s: invalid int value: %r"
                             % (flag_names(name), value)) from None
    try:
        cfg.set(name, value)
    except SettingError as exc:
        raise ConfigError("argument %s: %s" % (flag_names(name), exc.problem)) from None


def check_before_start(cfg):
    """In the master, after prepare_process() and before anything is bound
    or forked: the settings that only the system can check. Each mistake is
    one ConfigError line (main() exits 1), not a traceback from a worker."""
    if cfg.user is not None and not cfg.user.isdigit():
        import pwd
        try:
            pwd.getpwnam(cfg.user)
        except KeyError:
            raise ConfigError("No such user: %r" % cfg.user) from None
    if cfg.group is not None and not cfg.group.isdigit():
        import grp
        try:
            grp.getgrnam(cfg.group)
        except KeyError:
            raise ConfigError("No such group: %r" % cfg.group) from None
    for what, path in (("error log", cfg.errorlog), ("access log", cfg.accesslog)):
        if path not in (None, "-"):
            try:    # what logging.FileHandler is about to do, but with one clear line
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
            except OSError as exc:
                raise ConfigError("can not write the %s %s: %s" % (what, path, exc.strerror)) \
                    from None
    if cfg.pidfile:
        directory = os.path.dirname(os.path.abspath(cfg.pidfile))
        if not os.path.isdir(directory):
            raise ConfigError("the directory of the pidfile %s does not exist" % cfg.pidfile)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigError("can not write the pidfile %s: its directory is not writable"
                              % cfg.pidfile)
    if cfg.worker_tmp_dir and not (os.path.isdir(cfg.worker_tmp_dir) and
                                   os.access(cfg.worker_tmp_dir, os.W_OK | os.X_OK)):
        raise ConfigError("worker_tmp_dir %s is not a writable directory" % cfg.worker_tmp_dir)
    for address in cfg.bind + ([cfg.status_bind] if cfg.status_bind else []):
        parse_address(address)      # a port that is not a number, a name that does not resolve
    if cfg.statsd_host and not cfg.statsd_host.rpartition(":")[2].isdigit():
        raise ConfigError("statsd_host: not a port number in %r" % cfg.statsd_host)
    if cfg.syslog and not cfg.syslog_addr.startswith("unix://"):
        port = cfg.syslog_addr.partition("://")[2].rpartition(":")[2]
        if not port.isdigit():
            raise ConfigError("syslog_addr: not a port number in %r" % cfg.syslog_addr)


def cpu_quota():
    """The CPUs this process may use: the cgroup quota if one is set (v2
    ``cpu.max``, v1 ``cfs_quota_us``), else the CPUs in its affinity set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", None)):
        try:
            with open(path) as f:
                text = f.read()
            if parse:
                quota, period = parse(text)
            else:
                quota = text.strip()
                with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
                    period = f.read().strip()
            if quota not in ("max", "-1"):
                return max(1, min(cpus, -(-int(quota) // int(period))))
        except (OSError, ValueError):
            continue
    return cpus


# ---------------------------------------------------------------------------
# Scoreboard and heartbeat: the memory master and workers share

# The metric counters of one worker: a block of 8-byte cells in the
# scoreboard's second mmap, written only by the worker's loop thread (it
# settles every request: finish_request, reject, expire). A request the app
# answered adds one to a single cell whose index says all the metrics need
# to know of it, so one increment counts it and a scrape never sees half a
# request:
#     reused * REUSED + status class * CLASS_STRIDE + method * METHOD_STRIDE
#     + duration bucket
# (reused: not the connection's first request). The master sums the cells
# into each metric when it is scraped (Arbiter.metrics).
REQUEST_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")  # then other
# Upper bounds (seconds) of arbiter_request_duration_seconds' buckets; a
# last bucket holds what took longer.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FASTEST_BUCKET = DURATION_BUCKETS[0]        # most requests: no bisect needed
METHOD_STRIDE = len(DURATION_BUCKETS) + 1
CLASS_STRIDE = METHOD_STRIDE * (len(REQUEST_METHODS) + 1)
REUSED = CLASS_STRIDE * 10      # a class per first digit of the status, 0-9
METHOD_CELL = {method: i * METHOD_STRIDE for i, method in enumerate(REQUEST_METHODS)}
OTHER_METHOD_CELL = len(REQUEST_METHODS) * METHOD_STRIDE
# Running sums, published once a second (Worker.publish_sums):
DURATION_SUM_CELL = 2 * REUSED  # seconds in the app, a double (Scoreboard.seconds)
RECEIVED_CELL = DURATION_SUM_CELL + 1       # bytes of request heads and bodies
SENT_CELL = DURATION_SUM_CELL + 2           # bytes of response heads and bodies
CONNECTIONS_CELL = DURATION_SUM_CELL + 3    # connections accepted
# Requests refused before the app (Worker.reject, Worker.expire), by status.
REJECTED_STATUSES = (400, 403, 408, 413, 414, 431, 501, 505)
REJECTED_CELL = {status: CONNECTIONS_CELL + 1 + i for i, status in enumerate(REJECTED_STATUSES)}
REJECTED_OTHER_CELL = CONNECTIONS_CELL + 1 + len(REJECTED_STATUSES)
COUNTER_CELLS = REJECTED_OTHER_CELL + 1


# A worker's slot as the master reads it (Scoreboard.read); see Scoreboard.SLOT.
SlotState = collections.namedtuple(
    "SlotState", "busy recycle booted connections requests beat app_since")


def field_offsets(codes):
    """Where each field of a native struct of ``codes`` starts: the size of
    those before it, padded to its alignment (a "0" count only aligns)."""
    return [struct.calcsize("@%s0%s" % (codes[:i], code)) for i, code in enumerate(codes)]


class Scoreboard:
    """Shared memory (an anonymous mmap, inherited across fork) with one slot
    per worker: how many app slots are busy, why it wants replacing, whether
    it booted, its open connections, requests served, its heartbeat, and
    since when the app has had its request (sync workers). Each field has
    one writer, the worker's loop (or the master, around the worker's life),
    so a worker updates its slot without a lock or a system call; the
    master reads them all, and workers read each other's to share the load
    (see Worker.fair_to_accept and Worker.free_slot_elsewhere). A second
    mmap holds each worker's metric counters (see COUNTER_CELLS), with the
    same rule: the worker's loop writes, the master reads."""

    # Native formats ("@"), every field at its natural alignment, so that
    # one field is one aligned load or store.
    HEADER = struct.Struct("@I60x")     # how many slots have ever been in use
    # A slot's fields (see SlotState), in order: busy app slots, the recycle
    # reason (RECYCLE_*, 0: none), the booted byte (0 while booting, SERVING
    # once booted, DRAINING once it stops taking connections), connections,
    # requests served, the last heartbeat, since when the app has had its
    # request (0.0: it has none).
    SLOT_FORMAT = "HBBIQdd"
    SLOT = struct.Struct("@" + SLOT_FORMAT)
    BUSY_AT, RECYCLE_AT, BOOTED_AT, CONNECTIONS_AT, REQUESTS_AT, BEAT_AT, APP_SINCE_AT = \
        field_offsets(SLOT_FORMAT)
    # The 8-byte fields as items of the slot seen as 8-byte items (a slot
    # is 32 bytes, the header 64: every slot starts at an 8-byte item).
    REQUESTS_ITEM, BEAT_ITEM, APP_SINCE_ITEM = REQUESTS_AT >> 3, BEAT_AT >> 3, APP_SINCE_AT >> 3
    SLOTS = 1024
    # The master reads a slot whole (SLOT.unpack_from) while its worker
    # writes it, so a field must go from its old value to its new one in a
    # single store. struct's pack_into does not do that: it zero-fills the
    # bytes it packs, then packs them, and a reader in another process can
    # see the zeros in between (longer if the writer is preempted there, as
    # on a loaded machine). A heartbeat read as 0.0 is a worker silent since
    # the machine booted: twice in loaded test runs the master killed an
    # idle worker for that ("in the app for 8267.8 s", the uptime). So the
    # fields a worker writes are items of typed views of the memory (one
    # memcpy each); pack_into only resets a whole slot, which no worker is
    # writing then (claim, release).

    def __init__(self):
        self.memory = mmap.mmap(-1, self.HEADER.size + self.SLOT.size * self.SLOTS)
        view = memoryview(self.memory)
        self.bytes, self.halves, self.words, self.quads, self.doubles = (
            view, view.cast("H"), view.cast("I"), view.cast("Q"), view.cast("d"))
        self.free = list(range(self.SLOTS - 1, -1, -1))
        # The metric counters, COUNTER_CELLS per slot: a second mmap, so the
        # slots above keep their layout. Seen as unsigned 64-bit cells, and
        # as doubles for DURATION_SUM_CELL; only touched pages cost memory.
        self.counter_memory = mmap.mmap(-1, COUNTER_CELLS * 8 * self.SLOTS)
        self.cells = memoryview(self.counter_memory).cast("Q")
        self.seconds = memoryview(self.counter_memory).cast("d")

    def offset(self, slot):
        return self.HEADER.size + slot * self.SLOT.size

    def claim(self):
        """In the master: a slot for a new worker, its heartbeat set to now
        (a worker that never beats is stuck)."""
        if not self.free:
            raise HaltServer("more than %d workers" % self.SLOTS, 1)
        slot = self.free.pop()
        self.clear(slot, time.monotonic())
        if slot >= self.slots_in_use():
            self.words[0] = slot + 1        # (workers read it: see others())
        return slot

    def release(self, slot):
        """In the master, once the worker is reaped (and its counters are
        folded into the master's): the slot says nothing."""
        self.clear(slot, 0.0)
        start = slot * COUNTER_CELLS * 8
        self.counter_memory[start:start + COUNTER_CELLS * 8] = bytes(COUNTER_CELLS * 8)
        self.free.append(slot)

    def clear(self, slot, beat):
        """In the master: every field of the slot zero, but the heartbeat."""
        self.SLOT.pack_into(self.memory, self.offset(slot), 0, 0, 0, 0, 0, beat, 0.0)

    def slots_in_use(self):
        return self.HEADER.unpack_from(self.memory, 0)[0]

    def read(self, slot):
        """In the master: a SlotState of the worker's fields, now."""
        return SlotState._make(self.SLOT.unpack_from(self.memory, self.offset(slot)))

    def read_counters(self, slot):
        """A copy of a worker's metric counters (COUNTER_CELLS numbers)."""
        start = slot * COUNTER_CELLS
        values = self.cells[start:start + COUNTER_CELLS].tolist()
        values[DURATION_SUM_CELL] = self.seconds[start + DURATION_SUM_CELL]
        return values

    # The worker's writes, each to its own slot.

    def counters(self, slot):
        """The worker's own metric cells: (cells, seconds), its block seen as
        integers and as doubles; it adds to them in place, without a call."""
        start = slot * COUNTER_CELLS
        return (self.cells[start:start + COUNTER_CELLS],
                self.seconds[start:start + COUNTER_CELLS])

    # Each a store of one item (see SLOTS), at its byte offset divided by
    # the item's size.

    def beat(self, slot, now):
        self.doubles[(self.offset(slot) >> 3) + self.BEAT_ITEM] = now

    def mark_booted(self, slot):
        """Booted, with a heartbeat: the loop's first tick is awaited from
        now, not from the spawn (loading the app took time of its own)."""
        self.beat(slot, time.monotonic())
        self.bytes[self.offset(slot) + self.BOOTED_AT] = SERVING

    def mark_draining(self, slot):
        """Booted, but taking no more connections (see Worker.fair_to_accept)."""
        self.bytes[self.offset(slot) + self.BOOTED_AT] = DRAINING

    def ask_for_successor(self, slot, reason):
        self.bytes[self.offset(slot) + self.RECYCLE_AT] = reason

    def set_connections(self, slot, count):
        self.words[(self.offset(slot) + self.CONNECTIONS_AT) >> 2] = count

    def set_busy(self, slot, busy):
        self.halves[(self.offset(slot) + self.BUSY_AT) >> 1] = busy

    def count(self, slot, requests):
        at = self.offset(slot) >> 3
        self.quads[at + self.REQUESTS_ITEM] = requests
        self.doubles[at + self.BEAT_ITEM] = time.monotonic()

    # A sync request: the master times the app from app_since while busy,
    # else the worker from its beat; it reads busy first, app_since last.
    # So app_since is written before busy is set (busy never goes with the
    # previous request's app_since, nor with none), and the beat before
    # busy is cleared (an idle worker is not timed from a beat older than
    # the request).

    def app_started(self, slot, since):
        """Sync: the app has a request since ``since`` (the master times it)."""
        at = (self.HEADER.size + slot * self.SLOT.size) >> 3   # (offset(), inline: per request)
        self.doubles[at + self.APP_SINCE_ITEM] = since
        self.halves[at << 2] = 1        # busy: the slot's first field

    def app_finished(self, slot, requests, now):
        at = (self.HEADER.size + slot * self.SLOT.size) >> 3
        self.doubles[at + self.BEAT_ITEM] = now
        self.halves[at << 2] = 0
        self.doubles[at + self.APP_SINCE_ITEM] = 0.0
        self.quads[at + self.REQUESTS_ITEM] = requests

    # What workers read of each other.

    def others(self, slot):
        """(busy, connections, app since) of every other worker that is
        serving (booted, not draining, not waiting for a successor)."""
        unpack, memory, size = self.SLOT.unpack_from, self.memory, self.SLOT.size
        found = []
        for other in range(self.slots_in_use()):
            if other != slot:
                busy, recycle, booted, connections, _, _, app_since = unpack(
                    memory, self.HEADER.size + other * size)
                if booted == SERVING and not recycle:
                    found.append((busy, connections, app_since))
        return found


class Heartbeat:
    """``worker.tmp`` of gunicorn's hooks: ``notify()`` says the worker is
    alive. It lives in the worker's scoreboard slot, not in a file, so a
    full or read-only --worker-tmp-dir can not stop a worker."""

    def __init__(self, scoreboard, slot):
        self.scoreboard = scoreboard
        self.slot = slot

    def notify(self):
        self.scoreboard.beat(self.slot, time.monotonic())

    def last_update(self):
        return self.scoreboard.read(self.slot).beat

    def close(self):
        pass


# ---------------------------------------------------------------------------
# The Arbiter: the master process
# ---------------------------------------------------------------------------

class Arbiter:
    """The master: keeps ``num_workers`` workers alive and answers signals.

    It never serves a request itself. Everything it does happens in ``run()``,
    one step at a time, so no signal handler ever runs master logic.
    """

    def __init__(self, cfg, app=None, argv=None):
        self.cfg = cfg
        self.argv = argv                # re-read on HUP; None: cfg is fixed
        self.app = app                  # set when the app is preloaded
        self.log = Log(cfg)
        self.pid = None
        self.master_pid = 0             # our parent, while we are a re-exec'd master
        self.master_name = "Master"
        self.reexec_pid = 0             # our re-exec'd child, until it exits
        self.pidfile = None
        self.listeners = []
        self.ssl_context = None
        self.systemd = False
        self.workers = {}               # pid -> WorkerRecord
        self.worker_class = Worker      # gunicorn's attribute: the class of the workers
        self.worker_age = 0
        self.num_workers = cfg.workers
        self.logged_worker_count = None     # the last "N workers" debug line
        self.generation = 0             # workers of an older one are replaced
        self.previous_generation = 0
        self.signal_queue = collections.deque()
        self.wakeup_pipe = None
        self.shutdown = None            # "graceful" or "quick" once asked to stop
        self.drain_until = None         # TERM with --shutdown-delay: serve until then
        self.scoreboard = None
        self.status_listener = None
        self.status_clients = {}        # socket -> [deadline, bytes received, reply or None]
        self.status_paused_until = 0.0  # accept() failed for want of descriptors
        self.complaints = Complaints(self.log)
        self.failed_starts = 0          # workers in a row that died as they started
        self.last_failed_start = 0.0
        self.spawn_not_before = 0.0     # the backoff after failed starts
        self.started_at = time.monotonic()
        self.start_time = time.time()   # the same moment, for arbiter_start_time_seconds
        self.watchdog_interval = systemd_watchdog_interval()
        self.next_watchdog = 0.0
        self.next_metrics = 0.0
        self.served_by_gone = 0         # requests served by workers that exited
        # What workers that exited counted (their counter cells, summed), their
        # CPU seconds, and how many exited for each of RESTART_CAUSES: the
        # metrics' counters never go back when a worker goes.
        self.counted_by_gone = [0] * COUNTER_CELLS
        self.counted_by_gone[DURATION_SUM_CELL] = 0.0
        self.cpu_of_gone = 0.0
        self.restarts = dict.fromkeys(RESTART_CAUSES, 0)
        self.last_hurry = 0.0           # see hurry_stuck_workers
        self.start_cwd = os.getcwd()
        self.start_argv = reexec_argv()

    @property
    def proc_name(self):
        return self.cfg.name + (".2" if self.master_pid else "")

    # gunicorn's names of the master's state, which hooks use (its own
    # examples/when_ready.conf.py watches ``server.WORKERS`` from a thread).
    # Upper case for the sake of those hooks.

    @property
    def WORKERS(self):
        """pid -> worker, the same dict as ``workers``."""
        return self.workers

    @property
    def LISTENERS(self):
        return self.listeners

    @property
    def timeout(self):
        return self.cfg.timeout

    @property
    def address(self):
        """The ``bind`` addresses as gunicorn's cfg.address has them:
        (host, port), a unix socket's path, or an fd's number."""
        return [parse_address(address)[1] for address in self.cfg.bind]


    # -- run/start ---------------------------------------------------------

    def run(self):
        """In the master: start, then loop until a stop; return the exit status."""
        try:
            self.start()
            while True:
                self.maybe_promote_master()
                self.do_periodic_work()
                # Every queued signal first: workers that died of the same
                # Ctrl-C as the master must not be replaced on its way out.
                while self.signal_queue and self.shutdown is None:
                    name = SIGNAL_NAMES[self.signal_queue.popleft()]
                    if name != "chld":
                        self.log.info("Handling signal: %s", name)
                    getattr(self, "handle_" + name)()
                if self.shutdown is not None:
                    return self.halt(graceful=self.shutdown == "graceful")
                self.reap_workers()
                self.check_workers()
                self.hurry_stuck_workers(time.monotonic())
                self.manage_workers()
                self.sleep(self.next_deadline())
        except HaltServer as exc:
            # Something is broken (a worker can not boot, an address is taken):
            # stop at once; a worker stuck importing the app can not drain.
            return self.halt(exc.reason, exc.exit_status, graceful=False)
        except ConfigError as exc:
            return self.halt(str(exc), 1, graceful=False)
        except KeyboardInterrupt:
            return self.halt(graceful=False)
        except Exception:
            self.log.exception("Unhandled exception in the master loop")
            return self.halt("unhandled exception", 1, graceful=False)

    def start(self):
        """In the master, once: pidfile, listeners, signals, then when_ready."""
        self.log.info("Starting arbiter.py %s", __version__)
        self.log_configuration()
        if "GUNICORN_PID" in os.environ:
            self.master_pid = int(os.environ["GUNICORN_PID"])
            self.master_name = "Master.2"
        self.pid = os.getpid()
        set_process_title("master [%s]" % self.proc_name)
        call_hook(self, "nworkers_changed", self.num_workers, None)   # as gunicorn does
        call_hook(self, "on_starting")
        self.init_signals()
        if self.cfg.pidfile:
            self.pidfile = Pidfile(self.cfg.pidfile + (".2" if self.master_pid else ""))
            self.pidfile.create(self.pid)
        if self.cfg.preload_app and self.app is None:
            self.app = load_app_or_halt(self.cfg, self.log)
        self.ssl_context = make_ssl_context(self.cfg)
        self.listeners, self.systemd = inherited_listeners(self.log)
        if not self.listeners:
            self.listeners = create_listeners(self.cfg, self.log)
        self.log.debug("Arbiter booted")
        self.log_listeners()
        self.log.info("Using worker: %s", "gthread" if self.cfg.threads > 1 or
                      self.cfg.worker_class == "gthread" else "sync")
        if self.app is None and self.cfg.app_uri is None:
            # gunicorn refuses to start here; say loudly what answers instead.
            self.log.warning("No application module named (APP_MODULE or wsgi_app): "
                             "serving the built-in demo app")
        for warning in self.cfg.warnings:
            self.log.warning("%s", warning)
        self.scoreboard = Scoreboard()
        if self.cfg.status_bind:
            self.status_listener = create_status_listener(self.cfg, self.log)
            self.status_listener.setblocking(False)
        prepare_memory_for_fork()
        call_hook(self, "when_ready")
        # A re-exec'd master says it is ready only once promoted: until then
        # the old master is systemd's main process (and may yet be kept).
        if not self.master_pid:
            sd_notify("READY=1\nMAINPID=%d\nSTATUS=Serving on %s" % (
                self.pid, ", ".join(listener_url(s) for s in self.listeners)), self.log)

    def log_listeners(self):
        """gunicorn's line per listener, at start and when a reload rebinds."""
        for listener in self.listeners:
            self.log.info("Listening at: %s (%s)", listener_url(listener), self.pid)

    def log_configuration(self):
        """gunicorn's debug lines of the resolved settings (at start and on
        each reload): "Current configuration:", then "  name: value"."""
        if self.log.error_log.isEnabledFor(logging.DEBUG):
            self.log.debug("Current configuration:\n%s", "\n".join(
                "  %s: %s" % item for item in self.cfg.items()))

    def init_signals(self):
        """Signal handlers only record; a byte on the self-pipe wakes sleep()."""
        if self.wakeup_pipe:
            for fd in self.wakeup_pipe:
                os.close(fd)
        self.wakeup_pipe = open_wakeup_pipe()
        for signum in SIGNAL_NAMES:
            signal.signal(signum, self.record_signal)

    def record_signal(self, signum, frame):
        if signum == signal.SIGCHLD and signal.SIGCHLD in self.signal_queue:
            return  # one reap handles every exited child
        self.signal_queue.append(signum)

    def sleep(self, timeout):
        """Wait for a signal (its byte on the self-pipe), a status client, or
        the timeout."""
        waiting = [self.wakeup_pipe[0]]
        writing = []
        if self.status_listener is not None:
            if self.status_paused_until <= time.monotonic():
                waiting.append(self.status_listener)
            else:
                timeout = min(timeout, self.status_paused_until - time.monotonic())
        for client, (deadline, _, reply) in self.status_clients.items():
            (waiting if reply is None else writing).append(client)
            timeout = min(timeout, deadline - time.monotonic())
        channels = {w.channel[0]: w for w in self.workers.values()}
        waiting.extend(channels)
        try:
            ready, writable, _ = select.select(waiting, writing, [], max(0.0, timeout))
        except InterruptedError:
            return
        for channel in ready:
            if channel in channels:
                self.pass_connections_on(channels[channel])
        if self.status_listener in ready:
            self.answer_status()
        for client in ready + writable:
            if client in self.status_clients:
                self.serve_status_client(client)
        if self.status_clients:
            self.expire_status_clients()
        if self.wakeup_pipe[0] in ready:
            drain_wakeup_pipe(self.wakeup_pipe[0])

    def next_deadline(self):
        """Seconds until something may need doing: at most one."""
        now = time.monotonic()
        soonest = 1.0
        if self.drain_until is not None:
            soonest = min(soonest, self.drain_until - now)
        if self.watchdog_interval:
            soonest = min(soonest, self.next_watchdog - now)
        for worker in self.workers.values():
            if worker.aborted_at is not None:
                soonest = min(soonest, worker.aborted_at + ABORT_GRACE - now)
            elif not worker.booted and len(self.workers) < self.num_workers:
                soonest = min(soonest, 0.05)    # more to spawn once it has booted
        if self.spawn_not_before > now:
            soonest = min(soonest, self.spawn_not_before - now)
        if self.cfg.threads == 1 and len(self.workers) > 1:
            soonest = min(soonest, HANDOFF_DELAY)   # see hurry_stuck_workers
        return soonest


    # -- periodic work -----------------------------------------------------

    def do_periodic_work(self):
        """The systemd watchdog ping, the end of a --shutdown-delay, and the
        worker gauges for statsd (once a second)."""
        now = time.monotonic()
        self.complaints.flush()
        if self.log.statsd and now >= self.next_metrics:
            self.next_metrics = now + 1.0
            busy = sum(1 for w in self.workers.values() if self.scoreboard.read(w.slot).busy)
            self.log.statsd.send("gunicorn.workers:%d|g\ngunicorn.workers.busy:%d|g"
                                 % (len(self.workers), busy))
        if self.watchdog_interval and now >= self.next_watchdog:
            sd_notify("WATCHDOG=1", self.log)
            self.next_watchdog = now + self.watchdog_interval
        if self.drain_until is not None and now >= self.drain_until:
            self.shutdown = "graceful"


    # -- signal handlers, in the docstring's order -------------------------

    def handle_hup(self):
        """Reload the config and the app; new workers replace the old ones."""
        self.log.info("Hang up: %s", self.master_name)
        sd_notify("RELOADING=1\nMONOTONIC_USEC=%d" % (time.monotonic() * 1e6), self.log)
        self.reload()
        sd_notify("READY=1", self.log)

    def handle_term(self):
        """Graceful stop; with --shutdown-delay, first keep serving (and say
        "draining") for that long. A second TERM stops at once."""
        if self.cfg.shutdown_delay and self.drain_until is None:
            self.log.info("Draining: serving %ss more before stopping", self.cfg.shutdown_delay)
            self.drain_until = time.monotonic() + self.cfg.shutdown_delay
            sd_notify("STATUS=Draining", self.log)
        else:
            self.shutdown = "graceful"

    def handle_int(self):
        self.shutdown = "quick"

    def handle_quit(self):
        self.shutdown = "quick"

    def handle_ttin(self):
        if self.num_workers >= WORKERS_MOST:
            self.log.warning("TTIN ignored: already %d workers", self.num_workers)
            return
        self.set_num_workers(self.num_workers + 1)

    def handle_ttou(self):
        if self.num_workers > 1:
            self.set_num_workers(self.num_workers - 1)

    def handle_usr1(self):
        self.log.reopen()
        self.kill_workers(signal.SIGUSR1)

    def handle_usr2(self):
        self.reexec()

    def handle_winch(self):
        self.log.info("graceful stop of workers")
        self.set_num_workers(0)

    def handle_chld(self):
        self.reap_workers()

    def set_num_workers(self, number):
        old, self.num_workers = self.num_workers, number
        call_hook(self, "nworkers_changed", number, old)


    # -- reload, re-exec, promotion ----------------------------------------

    def reload(self):
        """In the master, on HUP: re-read the config (same argv), reopen the
        logs, rebind if the addresses changed, and start a new generation of
        workers; the old ones stop only as the new ones have booted."""
        old_cfg = self.cfg
        if self.argv is not None:
            try:
                cfg = load_config(self.argv, os.environ, config=old_cfg.config)
                cfg.app_uri = cfg.app_uri or old_cfg.app_uri
                check_before_start(cfg)
                self.log.setup(cfg)
                self.ssl_context = make_ssl_context(cfg)
            except (ConfigError, HaltServer, SystemExit) as exc:
                self.log.error("Reload: the new config is not usable, keeping the old "
                               "one: %s", getattr(exc, "reason", exc))
                self.log.setup(old_cfg)
            else:
                self.cfg = cfg
                self.log_configuration()
        if self.cfg.bind != old_cfg.bind:
            try:
                listeners = create_listeners(self.cfg, self.log)
            except (ConfigError, HaltServer) as exc:
                self.log.error("Reload: can not bind %s, keeping %s: %s", self.cfg.bind,
                               old_cfg.bind, getattr(exc, "reason", exc))
                self.cfg.bind = old_cfg.bind
            else:
                close_listeners(self.listeners, unlink=True)
                self.listeners = listeners
                self.log_listeners()
        set_process_title("master [%s]" % self.proc_name)
        call_hook(self, "on_reload")
        self.set_num_workers(self.cfg.workers)     # nworkers_changed, as gunicorn's reload
        self.previous_generation, self.generation = self.generation, self.worker_age + 1
        self.manage_workers()

    def reexec(self):
        """In the master, on USR2: fork and exec a new master (same interpreter,
        same argv, same cwd) that inherits the listening sockets."""
        if self.reexec_pid:
            self.log.warning("USR2 signal ignored. Child exists.")
            return
        if self.master_pid:
            self.log.warning("USR2 signal ignored. Parent exists.")
            return
        master_pid = os.getpid()
        self.reexec_pid = os.fork()
        if self.reexec_pid:
            return
        try:
            environ = dict(os.environ, GUNICORN_PID=str(master_pid))
            fds = [listener.fileno() for listener in self.listeners]
            for fd in fds:
                os.set_inheritable(fd, True)
            if self.systemd:
                environ["LISTEN_PID"] = str(os.getpid())
                environ["LISTEN_FDS"] = str(len(fds))
            else:
                environ["GUNICORN_FD"] = ",".join(map(str, fds))
            os.chdir(self.start_cwd)
            call_hook(self, "pre_exec")
            os.execve(self.start_argv[0], self.start_argv, environ)
        except BaseException:
            self.log.exception("Re-exec of %s failed", self.start_argv)
        finally:
            os._exit(1)

    def maybe_promote_master(self):
        """A re-exec'd master whose parent has gone becomes the master."""
        if not self.master_pid or self.master_pid == os.getppid():
            return
        self.log.info("Master has been promoted.")
        self.master_pid = 0
        self.master_name = "Master"
        os.environ.pop("GUNICORN_PID", None)
        if self.pidfile is not None:
            self.pidfile.rename(self.cfg.pidfile)
        set_process_title("master [%s]" % self.proc_name)
        sd_notify("MAINPID=%d\nREADY=1" % self.pid, self.log)


    # -- workers: spawn, watch, reap ---------------------------------------

    def manage_workers(self):
        """Bring the workers to ``num_workers`` of the current generation.

        New workers are forked first; a worker of an older generation (before
        a reload) stops only once a booted new worker can take its place, so
        capacity never dips. Extra workers (TTOU, WINCH) stop oldest first.
        """
        serving = [w for w in self.workers.values() if w.retired_at is None]
        current = sorted((w for w in serving if w.generation >= self.generation),
                         key=lambda w: w.age)
        outdated = sorted((w for w in serving if w.generation < self.generation),
                          key=lambda w: (w.booted, w.age))
        for _ in range(self.num_workers - len(current)):
            worker = self.spawn_worker() if self.may_spawn() else None
            if worker is None:
                break
            current.append(worker)
        extra = len(current) - self.num_workers
        for worker in current[:max(0, extra)]:
            self.retire_worker(worker)
        booted_current = sum(1 for w in current[max(0, extra):] if w.booted)
        keep_outdated = max(0, self.num_workers - booted_current)
        for worker in outdated[:max(0, len(outdated) - keep_outdated)]:
            self.retire_worker(worker)
        count = sum(1 for w in self.workers.values() if w.retired_at is None)
        if count != self.logged_worker_count:
            self.logged_worker_count = count
            self.log.debug("%d workers", count)

    def may_spawn(self):
        """May another worker be forked now? Not during the backoff after
        workers that died as they started, nor while BOOTING_MOST are
        booting. A worker that has lived past FAILED_START_WINDOW since the
        last failed start ends the backoff."""
        now = time.monotonic()
        if self.failed_starts and any(
                w.booted and w.spawned_at > self.last_failed_start and
                now - w.spawned_at > FAILED_START_WINDOW for w in self.workers.values()):
            self.failed_starts = 0
        if now < self.spawn_not_before:
            return False
        return sum(1 for w in self.workers.values() if not w.booted) < BOOTING_MOST

    def note_failed_start(self, worker, reason):
        """A worker died as it started: the next spawn waits (see may_spawn)."""
        now = time.monotonic()
        self.failed_starts += 1
        self.last_failed_start = now
        delay = min(SPAWN_BACKOFF_MAX, SPAWN_BACKOFF_MIN * 2 ** (self.failed_starts - 1))
        self.spawn_not_before = now + delay
        who = "Worker (pid:%s)" % worker.pid if worker.pid else "A new worker"
        self.log.error("%s %s (%d in a row); next spawn in %.1fs",
                       who, reason, self.failed_starts, delay)

    def spawn_worker(self):
        """Fork one worker (None if fork() failed). In the child this never
        returns: os._exit()."""
        self.worker_age += 1
        worker = WorkerRecord(self.worker_age, self.generation, self.scoreboard.claim(),
                              self.scoreboard, self.cfg, self.log, self.listeners)
        call_hook(self, "pre_fork", worker)
        # Signals wait (blocked) until the child has its own handlers: one
        # that arrived in between would go to the master's handler and be lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNAL_NAMES)
        try:
            pid = os.fork()
        except OSError as exc:
            # No memory or process slot for a worker now (EAGAIN, ENOMEM):
            # the master carries on and tries again after a backoff.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNAL_NAMES)
            self.scoreboard.release(worker.slot)
            self.note_failed_start(worker, "could not be forked: %s" % exc.strerror)
            return None
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNAL_NAMES)
            worker.pid = pid
            worker.channel[1].close()
            worker.poke[1].close()
            self.workers[pid] = worker
            return worker
        exit_code = 1
        record = worker
        try:
            record.pid = os.getpid()
            self.forget_master_state()
            set_process_title("worker [%s]" % self.proc_name)
            self.log.info("Booting worker with pid: %s", record.pid)
            worker = Worker(record, self.pid, self.listeners, self.app, self.cfg, self.log,
                            self.scoreboard, self.ssl_context)
            call_hook(self, "post_fork", worker)
            worker.run()
            exit_code = 0
        except SystemExit as exc:
            exit_code = exc.code if isinstance(exc.code, int) else 1
        except AppImportError as exc:
            self.log.error("%s", exc)
            exit_code = exc.exit_status
        except BaseException:
            self.log.exception("Exception in worker process")
            exit_code = 1 if worker.booted else WORKER_BOOT_ERROR
        finally:
            try:
                self.log.info("Worker exiting (pid: %s)", record.pid)
                call_hook(self, "worker_exit", worker)
                self.log.close()
            finally:
                os._exit(exit_code)

    def forget_master_state(self):
        """In a new worker: drop what belongs to the master."""
        signal.set_wakeup_fd(-1)
        for fd in self.wakeup_pipe:
            os.close(fd)
        for other in self.workers.values():
            other.channel[0].close()
            other.poke[0].close()
        self.workers = {}
        if self.status_listener is not None:
            self.status_listener.close()
        for client in list(self.status_clients):
            client.close()
        self.status_clients = {}
        self.signal_queue.clear()

    def retire_worker(self, worker, sig=signal.SIGTERM):
        worker.retired_at = time.monotonic()
        self.kill_worker(worker.pid, sig)

    def kill_workers(self, sig):
        for pid in list(self.workers):
            self.kill_worker(pid, sig)

    def kill_worker(self, pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass  # already gone: reap_workers will see it

    def check_workers(self):
        """gunicorn's murder_workers, and what the scoreboard says besides:
        note the workers that booted and those that asked to be replaced
        (recycled); abort workers silent, or in the app, for longer than
        ``timeout`` (SIGABRT makes the worker log its stack and request),
        then SIGKILL them after a grace; kill retired workers still alive
        after ``graceful_timeout``; stop the server if a worker does not
        boot within ``boot_timeout``."""
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.aborted_at is not None:
                if now - worker.aborted_at >= ABORT_GRACE:
                    self.kill_worker(worker.pid, signal.SIGKILL)
                continue
            if worker.retired_at is not None and now - worker.retired_at > self.cfg.graceful_timeout:
                self.log.warning("Worker (pid:%s) did not stop within the graceful timeout; "
                                 "killing it", worker.pid)
                worker.aborted_at = now - ABORT_GRACE
                self.kill_worker(worker.pid, signal.SIGKILL)
                continue
            busy, recycle, booted, _, _, last_beat, app_since = self.scoreboard.read(worker.slot)
            worker.booted = worker.booted or bool(booted)
            if not worker.booted and self.cfg.boot_timeout and \
                    now - worker.spawned_at > self.cfg.boot_timeout:
                self.log.error("Worker (pid:%s) did not boot within %ss (--boot-timeout)",
                               worker.pid, self.cfg.boot_timeout)
                raise HaltServer("Worker boot timeout.", WORKER_BOOT_ERROR)
            if worker.generation != OUTDATED and recycle:
                worker.generation = OUTDATED    # replaced as soon as its successor boots
            # A sync worker's app is timed from the request's start (time
            # spent waiting for a slow client excepted); otherwise the
            # heartbeat says whether the worker's loop is stuck. Neither is
            # older than the worker's spawn (see Scoreboard.SLOTS for how a
            # worker once looked silent since the machine booted).
            in_app = busy and app_since > 0.0
            since = max(app_since if in_app else last_beat, worker.spawned_at)
            if self.cfg.timeout and now - since > self.cfg.timeout:
                self.log.critical("WORKER TIMEOUT (pid:%s)", worker.pid)
                self.log.info("Worker (pid:%s) %s %.1f s (--timeout %s)", worker.pid,
                              "had its request in the app for" if in_app else
                              "gave no sign of life for", now - since, self.cfg.timeout)
                worker.aborted_at = now
                self.kill_worker(worker.pid, signal.SIGABRT)

    def reap_workers(self):
        """Collect exited children; a worker that fails while booting stops the
        server (or, during a reload, only the reload)."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.reexec_pid:
                self.reexec_pid = 0
                self.log.info("The re-exec'd master (pid:%s) exited", pid)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            slot = self.scoreboard.read(worker.slot)
            booted = worker.booted or slot.booted
            self.served_by_gone += slot.requests
            self.counted_by_gone = [a + b for a, b in zip(
                self.counted_by_gone, self.scoreboard.read_counters(worker.slot))]
            self.cpu_of_gone += usage.ru_utime + usage.ru_stime
            self.restarts[self.restart_cause(worker, status)] += 1
            self.log_worker_exit(worker, status)
            self.scoreboard.release(worker.slot)
            worker.channel[0].close()   # with any connection still on its way to it
            worker.poke[0].close()
            call_hook(self, "child_exit", worker)
            code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") \
                else (status >> 8)
            if booted or code not in (WORKER_BOOT_ERROR, APP_LOAD_ERROR):
                self.check_start(worker, booted, slot.recycle)
                continue
            reason = "App failed to load." if code == APP_LOAD_ERROR else "Worker failed to boot."
            if worker.generation > self.previous_generation and \
                    any(w.generation < self.generation for w in self.workers.values()):
                self.log.error("Reload failed: %s Keeping the running workers.", reason)
                self.generation = self.previous_generation
                for other in self.workers.values():
                    if other.generation > self.generation and other.retired_at is None:
                        self.retire_worker(other)
                continue
            if self.still_serving():
                # TTIN, or a replacement: the app (or the system) broke
                # since the others booted. They go on; we try again later.
                self.note_failed_start(worker, "failed to boot: %s Keeping the %d running "
                                       "workers" % (reason, self.still_serving()))
                continue
            raise HaltServer(reason, code)

    def restart_cause(self, worker, status):
        """Why a worker exited, as one of RESTART_CAUSES: it asked to be
        recycled; its loop or app overran --timeout; the master stopped it,
        for a new generation (HUP) or not (TTOU, WINCH, a stop); it exited
        cleanly on its own (--reload saw a change); or it failed."""
        recycled = self.scoreboard.read(worker.slot).recycle
        if recycled:
            return RECYCLE_CAUSES[recycled]
        if worker.retired_at is not None:
            return "reload" if worker.generation != self.generation else "stopped"
        if worker.aborted_at is not None:
            return "timeout"
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return "reload"
        return "crash"

    def check_start(self, worker, booted, recycled):
        """In the master, for a worker that exited: one that died as it
        started (neither asked to stop nor recycled, before it booted or
        within FAILED_START_WINDOW) counts towards the spawn backoff."""
        if worker.retired_at is not None or worker.aborted_at is not None or recycled or \
                worker.generation == OUTDATED:
            return
        lived = time.monotonic() - worker.spawned_at
        if not booted:
            self.note_failed_start(worker, "died before it booted")
        elif lived < FAILED_START_WINDOW:
            self.note_failed_start(worker, "died %.1fs after it started" % lived)

    def still_serving(self):
        """How many booted workers of the current generation still serve
        (booted as the scoreboard says now: check_workers() may not have
        looked since)."""
        return sum(1 for w in self.workers.values()
                   if (w.booted or self.scoreboard.read(w.slot).booted) and w.retired_at is None
                   and w.generation >= self.generation)

    def log_worker_exit(self, worker, status):
        """Say why a worker died: exit code, signal, timeout or recycling,
        and how many client connections it still held (they went with it)."""
        slot = self.scoreboard.read(worker.slot)
        recycled, connections = slot.recycle, slot.connections
        if worker.aborted_at is not None:
            cause = "timeout"
        elif recycled:
            cause = "recycled: %s" % RECYCLE_REASONS[recycled]
        elif worker.retired_at is not None:
            cause = "stopped"
        else:
            cause = "unexpected"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = sig
            if sig == signal.SIGKILL and cause == "unexpected":
                self.log.error("Worker (pid:%s) was sent SIGKILL! Perhaps out of memory?",
                               worker.pid)
            else:
                level = logging.INFO if cause == "stopped" else logging.ERROR
                self.log.log(level, "Worker (pid:%s) was sent %s! (%s)", worker.pid, name, cause)
        else:
            code = os.WEXITSTATUS(status)
            if code:
                self.log.error("Worker (pid:%s) exited with code %s (%s)", worker.pid, code, cause)
            else:
                self.log.info("Worker (pid:%s) exited (%s)", worker.pid, cause)
        if connections and (os.WIFSIGNALED(status) or os.WEXITSTATUS(status)):
            self.log.warning("%d client connection%s closed with worker %s", connections,
                             "s were" if connections > 1 else " was", worker.pid)


    # -- connections handed between workers (fair dispatch) ----------------

    def pass_connections_on(self, source):
        """In the master: connections a busy worker handed over (each one's
        request is waiting, or it was just accepted) go on to the worker
        with a free app slot and the fewest connections. The master only
        holds the descriptor for that moment; a connection nobody can take
        is closed (the client sees a clean close, not a hang)."""
        while True:
            try:
                message, fds = receive_connection(source.channel[0])
            except BlockingIOError:
                return
            except OSError:
                return
            if message is None or not fds:
                continue        # a wake-up (the worker asked for a successor)
            try:
                for target in self.workers_to_take_over(source):
                    try:
                        send_connection(target.channel[0], message, fds[0])
                    except OSError:
                        continue
                    break
                else:
                    self.log.debug("No worker could take a handed-over connection")
            finally:
                for fd in fds:
                    os.close(fd)

    def hurry_stuck_workers(self, now):
        """Sync workers: one whose app has had the same request since our
        last look (HANDOFF_DELAY ago at least), while another worker is
        free, is poked to hand over the connections whose next request has
        arrived (Worker.watch_while_in_app). A master that woke late is in
        a machine whose CPUs are all taken: then every worker is slow, and
        moving connections would not help."""
        late = now - self.last_hurry > 3 * HANDOFF_DELAY
        self.last_hurry = now
        if self.cfg.threads > 1 or len(self.workers) < 2:
            return
        serving = [(w, self.scoreboard.read(w.slot)) for w in self.workers.values()
                   if w.booted and w.retired_at is None]
        if not any(not slot.busy and slot.booted == SERVING and not slot.recycle
                   for _, slot in serving):
            return
        for worker, (busy, _, _, connections, _, _, app_since) in serving:
            stuck = busy and app_since and app_since == worker.seen_in_app and \
                now - app_since > HANDOFF_DELAY
            worker.seen_in_app = app_since if busy else 0.0
            if stuck and connections > 1 and not late:
                try:
                    worker.poke[0].send(b"!")
                except OSError:
                    pass        # a poke is waiting already

    def workers_to_take_over(self, source):
        """Workers that may take a connection from ``source``, best first:
        booted, serving, forked with the same listeners; free app slots
        first, then the fewest connections. ``source`` comes last: if
        nobody else can, it keeps the connection."""
        threads = self.cfg.threads
        candidates = []
        for worker in self.workers.values():
            if worker is source or worker.retired_at is not None or \
                    worker.generation == OUTDATED or worker.listeners is not source.listeners:
                continue
            slot = self.scoreboard.read(worker.slot)
            if slot.booted == SERVING and not slot.recycle:
                candidates.append((slot.busy >= threads, slot.busy, slot.connections,
                                   worker.age, worker))
        candidates.sort(key=lambda c: c[:4])
        return [c[-1] for c in candidates] + [source]


    # -- the status endpoint (--status-bind): JSON and /metrics ------------

    def answer_status(self):
        """In the master: take the new clients of --status-bind. Each is then
        served from the master's select loop (serve_status_client), so a
        client that sends nothing or reads nothing costs the master nothing
        but a descriptor, for STATUS_CLIENT_TIMEOUT at most."""
        for _ in range(STATUS_CLIENTS_MOST):
            try:
                client, _ = self.status_listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                # Out of descriptors (EMFILE...): the listener stays readable,
                # so pause instead of spinning on it, until a status client
                # is done (its descriptor is free) or for ACCEPT_BACKOFF_MIN.
                self.status_paused_until = time.monotonic() + ACCEPT_BACKOFF_MIN
                self.complaints.note(logging.ERROR, "Status endpoint: accept() failed %%d "
                                     "time(s): %s; pausing it" % exc.strerror)
                return
            client.setblocking(False)
            if len(self.status_clients) >= STATUS_CLIENTS_MOST:
                oldest = min(self.status_clients, key=lambda c: self.status_clients[c][0])
                self.drop_status_client(oldest)
            self.status_clients[client] = [time.monotonic() + STATUS_CLIENT_TIMEOUT, b"", None]

    def serve_status_client(self, client):
        """In the master, when a status client is ready: read its request
        head (up to its blank line, or 8 KB), then send the answer: for GET
        /metrics Prometheus' text format (always 200), else JSON (200 while
        serving, 503 while starting or draining). Never blocks."""
        state = self.status_clients[client]
        try:
            if state[2] is None:
                data = client.recv(STATUS_HEAD_MOST)
                if not data:
                    return self.drop_status_client(client)
                state[1] += data
                if b"\r\n\r\n" not in state[1] and b"\n\n" not in state[1] and \
                        len(state[1]) < STATUS_HEAD_MOST:
                    return
                target = (state[1].split(b"\r\n", 1)[0].split(b" ") + [b""])[1]
                if target.split(b"?", 1)[0] == b"/metrics":
                    status, text = 200, self.metrics().encode()
                    content_type = PROMETHEUS_CONTENT_TYPE
                else:
                    status, body = self.status()
                    import json
                    text = json.dumps(body, sort_keys=True).encode() + b"\n"
                    content_type = b"application/json"
                state[2] = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                            % (status, REASONS[status].encode(), content_type, len(text),
                               text))
            state[2] = state[2][client.send(state[2]):]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.drop_status_client(client)
        if not state[2]:
            self.drop_status_client(client)

    def expire_status_clients(self):
        now = time.monotonic()
        for client, state in list(self.status_clients.items()):
            if state[0] <= now:
                self.drop_status_client(client)

    def drop_status_client(self, client):
        del self.status_clients[client]
        client.close()
        self.status_paused_until = 0.0      # a descriptor is free again

    def status(self):
        """(HTTP status, JSON-able dict) of the server, from the scoreboard."""
        workers = list(self.workers.values())
        slots = [self.scoreboard.read(w.slot) for w in workers]
        busy = sum(1 for slot in slots if slot.busy)
        served = self.served_by_gone + sum(slot.requests for slot in slots)
        booted = sum(1 for w in workers if w.booted and w.retired_at is None)
        draining = self.drain_until is not None or self.shutdown is not None
        state = "draining" if draining else "ready" if booted else "starting"
        return (200 if state == "ready" else 503), {
            "status": state, "pid": self.pid, "workers": len(workers),
            "workers_booted": booted, "workers_busy": busy, "workers_wanted": self.num_workers,
            "threads": self.cfg.threads, "threads_busy": sum(slot.busy for slot in slots),
            "requests": served, "uptime": round(time.monotonic() - self.started_at, 3),
            "version": __version__}

    def metrics(self):
        """The server's metrics in Prometheus' text format 0.0.4: the gauges
        from the scoreboard's slots; the counters summed over the live
        workers' counter cells and what exited workers counted; the workers'
        memory and CPU from /proc, now."""
        workers = sorted(self.workers.values(), key=lambda w: w.age)
        slots = [self.scoreboard.read(w.slot) for w in workers]
        counted = self.counted_by_gone
        for worker in workers:
            counted = [a + b for a, b in zip(counted, self.scoreboard.read_counters(worker.slot))]
        by_class = [0] * 10
        by_method = [0] * (len(REQUEST_METHODS) + 1)
        by_bucket = [0] * METHOD_STRIDE
        reuses = 0
        for cell in range(2 * REUSED):
            count = counted[cell]
            if count:
                reused, rest = divmod(cell, REUSED)
                status_class, rest = divmod(rest, CLASS_STRIDE)
                method, bucket = divmod(rest, METHOD_STRIDE)
                by_class[status_class] += count
                by_method[method] += count
                by_bucket[bucket] += count
                reuses += count * reused
        cumulative, buckets = 0, []
        for bound, count in zip(DURATION_BUCKETS + (float("inf"),), by_bucket):
            cumulative += count
            buckets.append(("_bucket", (("le", bound),), cumulative))
        usage = {w.pid: read_process_usage(w.pid) for w in workers}
        usage = {pid: found for pid, found in usage.items() if found is not None}
        booted = sum(1 for w in workers if w.booted and w.retired_at is None)
        now = time.monotonic()
        families = [
            ("arbiter_build_info", "gauge", "The version of arbiter.py and of Python.",
             [("", (("version", __version__), ("python", "%d.%d.%d" % sys.version_info[:3]),
                    ("implementation", sys.implementation.name)), 1)]),
            ("arbiter_start_time_seconds", "gauge", "When the master started, in Unix time.",
             [("", (), self.start_time)]),
            ("arbiter_uptime_seconds", "gauge", "Seconds since the master started.",
             [("", (), round(now - self.started_at, 3))]),
            ("arbiter_workers", "gauge", "Worker processes running (booting and stopping too).",
             [("", (), len(workers))]),
            ("arbiter_workers_wanted", "gauge", "Workers the master keeps (-w, TTIN, TTOU).",
             [("", (), self.num_workers)]),
            ("arbiter_workers_booted", "gauge", "Workers booted and serving.",
             [("", (), booted)]),
            ("arbiter_workers_busy", "gauge", "Workers with a request in an app slot.",
             [("", (), sum(1 for slot in slots if slot.busy))]),
            ("arbiter_threads", "gauge", "App slots (--threads) of the running workers.",
             [("", (), self.cfg.threads * len(workers))]),
            ("arbiter_threads_busy", "gauge", "App slots with a request.",
             [("", (), sum(slot.busy for slot in slots))]),
            ("arbiter_connections", "gauge", "Client connections the workers hold.",
             [("", (), sum(slot.connections for slot in slots))]),
            ("arbiter_connections_total", "counter", "Client connections accepted.",
             [("", (), counted[CONNECTIONS_CELL])]),
            ("arbiter_keepalive_reuses_total", "counter",
             "Requests on a connection that had served one before.", [("", (), reuses)]),
            ("arbiter_requests_total", "counter",
             "Requests answered by the app, by status class.",
             [("", (("status_class", "%dxx" % c),), by_class[c]) for c in range(10)
              if 1 <= c <= 5 or by_class[c]]),
            ("arbiter_requests_by_method_total", "counter",
             "Requests answered by the app, by method.",
             [("", (("method", method),), count)
              for method, count in zip(REQUEST_METHODS + ("other",), by_method)]),
            ("arbiter_request_duration_seconds", "histogram",
             "Time in the app, from the call to the end of its response (the access "
             "log's request time).",
             buckets + [("_sum", (), counted[DURATION_SUM_CELL]), ("_count", (), cumulative)]),
            ("arbiter_received_bytes_total", "counter",
             "Bytes of request heads and bodies (decoded) received.",
             [("", (), counted[RECEIVED_CELL])]),
            ("arbiter_sent_bytes_total", "counter",
             "Bytes of response heads and bodies sent (and error pages).",
             [("", (), counted[SENT_CELL])]),
            ("arbiter_rejected_requests_total", "counter",
             "Requests refused before the app, by status.",
             [("", (("status", str(status)),), counted[REJECTED_CELL[status]])
              for status in REJECTED_STATUSES] +
             ([("", (("status", "other"),), counted[REJECTED_OTHER_CELL])]
              if counted[REJECTED_OTHER_CELL] else [])),
            ("arbiter_worker_restarts_total", "counter", "Workers that exited, by cause.",
             [("", (("cause", cause),), count) for cause, count in self.restarts.items()]),
            ("arbiter_workers_resident_memory_bytes", "gauge",
             "Resident memory of the running workers, summed.",
             [("", (), sum(rss for rss, _ in usage.values()))]),
            ("arbiter_worker_resident_memory_bytes", "gauge",
             "Resident memory of each running worker.",
             [("", (("pid", str(pid)),), rss) for pid, (rss, _) in usage.items()]),
            ("arbiter_workers_cpu_seconds_total", "counter",
             "CPU seconds of all workers, those that exited included.",
             [("", (), round(self.cpu_of_gone + sum(cpu for _, cpu in usage.values()), 6))]),
            ("arbiter_worker_cpu_seconds_total", "counter", "CPU seconds of each running worker.",
             [("", (("pid", str(pid)),), cpu) for pid, (_, cpu) in usage.items()]),
        ]
        return "".join(prometheus_lines(*family) for family in families)


    # -- stop and halt -----------------------------------------------------

    def stop(self, graceful=True):
        """Close the listeners, stop the workers (TERM: finish requests; QUIT:
        now), wait up to ``graceful_timeout``, then SIGKILL what is left."""
        sd_notify("STOPPING=1", self.log)
        unlink = not (self.reexec_pid or self.master_pid or self.systemd
                      or self.cfg.reuse_port)
        close_listeners(self.listeners, unlink)
        self.listeners = []
        for worker in list(self.workers.values()):
            self.retire_worker(worker, signal.SIGTERM if graceful else signal.SIGQUIT)
        self.wait_for_workers(self.cfg.graceful_timeout)
        if self.workers:
            self.kill_workers(signal.SIGKILL)
            self.wait_for_workers(5.0)

    def wait_for_workers(self, seconds):
        deadline = time.monotonic() + seconds
        while self.workers and time.monotonic() < deadline:
            self.sleep(min(0.5, deadline - time.monotonic()))
            try:
                self.reap_workers()
            except HaltServer:
                pass  # already stopping

    def halt(self, reason=None, exit_status=0, graceful=True):
        """Stop everything, remove the pidfile, run on_exit; the exit status."""
        self.stop(graceful)
        # A failure is an ERROR, so that it survives --log-level error.
        log = self.log.info if exit_status == 0 else self.log.error
        log("Shutting down: %s", self.master_name)
        if reason is not None:
            log("Reason: %s", reason)
        if self.pidfile is not None:
            self.pidfile.unlink()
        if self.status_listener is not None:
            close_listeners([self.status_listener], unlink=True)
        for client in list(self.status_clients):
            self.drop_status_client(client)
        call_hook(self, "on_exit")
        self.log.close()
        return exit_status


def reexec_argv():
    """The command that started us, to start a new master the same way
    (``python arbiter.py``, ``python -m arbiter``, a symlink or a zipapp)."""
    if getattr(sys, "orig_argv", None):
        return [sys.executable] + list(sys.orig_argv[1:])
    return [sys.executable] + [os.path.abspath(sys.argv[0])] + sys.argv[1:]


# ---------------------------------------------------------------------------
# The pidfile
# ---------------------------------------------------------------------------

class Pidfile:
    """The master's pid in a file: written atomically, refused if it names a
    live process, removed on exit only if it still names us."""

    def __init__(self, path):
        self.path = path
        self.pid = None

    def create(self, pid, check=True):
        other = self.running_pid() if check else None
        if other and other != pid:
            raise HaltServer("Already running on PID %s (or pid file '%s' is stale)"
                             % (other, self.path))
        self.pid = pid
        tmp = "%s.%d.tmp" % (self.path, pid)
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        try:
            os.write(fd, b"%d\n" % pid)
            os.close(fd)
            os.rename(tmp, self.path)  # atomic: readers see the old file or the new one
        except BaseException:
            os.unlink(tmp)
            raise

    def rename(self, path):
        self.unlink()
        self.path = path
        self.create(self.pid, check=False)

    def unlink(self):
        if self.read() == self.pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def read(self):
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def running_pid(self):
        """The pid in the file if that process is alive, else None (stale)."""
        pid = self.read()
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid


# ---------------------------------------------------------------------------
# Listening sockets and TLS
# ---------------------------------------------------------------------------

def parse_address(address, default_port=8000):
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT``, ``unix:PATH`` or ``fd://N`` ->
    (family, address); family is None for an inherited fd."""
    if address.startswith("unix:"):
        return socket.AF_UNIX, address[len("unix:"):]
    if address.startswith("fd://"):
        try:
            return None, int(address[len("fd://"):])
        except ValueError:
            raise ConfigError("not a file descriptor: %r" % address) from None
    if address.startswith("tcp://"):
        address = address[len("tcp://"):]
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError("expected [HOST]:PORT, not %r" % address)
        port = rest[1:]
        family = socket.AF_INET6
    elif address.count(":") > 1:
        host, port, family = address, "", socket.AF_INET6
    else:
        host, _, port = address.partition(":")
        family = socket.AF_INET
    if not port:
        port = default_port
    try:
        port = int(port)
    except ValueError:
        raise ConfigError("not a port number in %r" % address) from None
    if not 0 <= port <= 65535:
        raise ConfigError("port out of range in %r" % address)
    if family == socket.AF_INET and host and not re.fullmatch(r"[0-9.]+", host):
        try:  # a name such as "localhost": resolve it to its first address
            info = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            return info[0], info[4][:2]
        except socket.gaierror as exc:
            raise ConfigError("can not resolve %r: %s" % (host, exc)) from None
    return family, (host or "0.0.0.0", port)


def create_listeners(cfg, log):
    """Bind every ``--bind`` address, retrying a busy one five times."""
    listeners = []
    try:
        for address in cfg.bind:
            family, addr = parse_address(address)
            if family is None:
                listeners.append(socket.socket(fileno=addr))
                continue
            for attempt in range(5):
                try:
                    listeners.append(bind_socket(family, addr, cfg))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise HaltServer("Can't bind %s: %s" % (address, exc.strerror), 1)
                    log.error("Connection in use: %s", address)
                    if attempt < 4:
                        log.error("Retrying in 1 second.")
                        time.sleep(1)
            else:
                raise HaltServer("Can't connect to %s: address already in use" % address, 1)
    except (HaltServer, ConfigError):
        close_listeners(listeners, unlink=True)
        raise
    return listeners


def bind_socket(family, address, cfg):
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            remove_stale_unix_socket(address)
            old_umask = os.umask(cfg.umask)
            try:
                sock.bind(address)
            finally:
                os.umask(old_umask)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        sock.listen(cfg.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def remove_stale_unix_socket(path):
    """Unlink a socket file nobody listens on; refuse a live one."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EADDRINUSE, "%s exists and is not a socket" % path)
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    else:
        raise OSError(errno.EADDRINUSE, "in use")
    finally:
        probe.close()


def inherited_listeners(log):
    """Sockets passed by a previous master (``GUNICORN_FD``) or by systemd
    (``LISTEN_FDS``/``LISTEN_PID``); returns (sockets, from_systemd)."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and "LISTEN_FDS" in os.environ:
        count = int(os.environ.pop("LISTEN_FDS"))
        os.environ.pop("LISTEN_PID")
        return [socket.socket(fileno=fd) for fd in range(3, 3 + count)], True
    fds = os.environ.pop("GUNICORN_FD", "")
    listeners = []
    for fd in filter(None, fds.split(",")):
        sock = socket.socket(fileno=int(fd))
        os.set_inheritable(sock.fileno(), False)
        listeners.append(sock)
    return listeners, False


def create_status_listener(cfg, log):
    """The master's own socket for --status-bind (never given to workers)."""
    family, address = parse_address(cfg.status_bind)
    if family is None:
        sock = socket.socket(fileno=address)
    else:
        try:
            sock = bind_socket(family, address, cfg)
        except OSError as exc:
            raise HaltServer("Can't bind the status endpoint %s: %s"
                             % (cfg.status_bind, exc.strerror), 1) from None
    log.info("Status endpoint at: %s", listener_url(sock))
    return sock


def listener_url(sock):
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:%s" % (address.decode() if isinstance(address, bytes) else address)
    if sock.family == socket.AF_INET6:
        return "http://[%s]:%d" % address[:2]
    return "http://%s:%d" % address


def close_listeners(listeners, unlink):
    for sock in listeners:
        path = sock.getsockname() if sock.family == socket.AF_UNIX else None
        sock.close()
        if unlink and path:
            try:
                os.unlink(path)
            except OSError:
                pass


def make_ssl_context(cfg):
    """The server's SSLContext (None without ``certfile``), made through the
    ``ssl_context`` hook with gunicorn's signature."""
    if not cfg.certfile:
        return None
    enable_tls()

    def default_ssl_context_factory():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs)
        context.load_cert_chain(cfg.certfile, cfg.keyfile)
        context.verify_mode = ssl.VerifyMode(cfg.cert_reqs)
        if cfg.ciphers:
            context.set_ciphers(cfg.ciphers)
        return context

    try:
        return cfg.ssl_context(cfg, default_ssl_context_factory)
    except (OSError, ValueError) as exc:
        raise HaltServer("TLS settings: %s" % exc, 1) from None


def enable_tls():
    """Import ssl (only when a certificate is configured) and teach the
    connection code its want-read/want-write errors."""
    global ssl, WANT_READ, WANT_WRITE
    try:
        import ssl
    except ImportError:
        raise HaltServer("TLS needs the ssl module, which this Python lacks", 1) from None
    WANT_READ = (BlockingIOError, ssl.SSLWantReadError)
    WANT_WRITE = (ssl.SSLWantWriteError,)


# ---------------------------------------------------------------------------
# The worker: the master's record of it, the worker process, connections
# ---------------------------------------------------------------------------
# A worker process is an event loop that owns every client byte, around app
# slots: one (the loop itself runs the app: gunicorn's sync worker) or
# ``--threads N`` threads (gunicorn's gthread). A request reaches an app slot
# only when its head and its whole body have arrived; what the client does
# not take of a response at once waits in the connection's OutputBuffer and
# leaves at the client's pace. So a slow, silent or absent client costs the
# loop a little state, never an app slot.
#
# A connection is always in one stage, and its deadline is the stage's:
#
#   HEAD  waiting for a request head: --head-timeout (--keep-alive while
#         nothing of the next request has arrived)
#   BODY  receiving a body: --body-timeout, plus a second for every
#         --body-min-rate bytes received
#   APP   the request is in an app slot; the app's thread owns the
#         connection; --timeout bounds the app
#   SEND  the loop sends the rest of the response: --send-timeout, plus a
#         second for every --send-min-rate bytes sent

ACCEPT = "accept"       # selector data of a listening socket
WAKE = "wake"           # selector data of the worker's wake-up pipe
HEARTBEAT_INTERVAL = 1.0
NEVER = float("inf")
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
HEAD, BODY, APP, SEND = "head", "body", "app", "send"
# Pipelined requests one connection gets served before the others' turn.
PIPELINE_TURN = 8
CHANNEL = "channel"     # selector data of the worker's end of its handoff channel
# Fair dispatch: a sync worker whose app has had a request this long hands
# the connections whose next request is waiting to the master (for a worker
# with a free slot); a worker accepts while it holds at most this many more
# connections than the least loaded worker that has a free slot.
HANDOFF_DELAY = 0.01
BALANCE_SLACK = 2
BALANCE_STUCK = 0.1         # a sync worker in its app this long can not accept
BALANCE_RECHECK = 0.01      # how often a worker that stopped accepting looks again
HANDOFF_MESSAGE_MAX = 512
# A problem that can recur thousands of times a second (a full descriptor
# table, a flood) is logged at most once per this many seconds, with a count.
COMPLAINT_INTERVAL = 1.0
# accept() failing for want of descriptors or memory (EMFILE, ENFILE,
# ENOBUFS, ENOMEM) pauses accepting this long, doubling while it lasts:
# the listener stays readable, so retrying at once would spin.
ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX = 0.1, 1.0
ACCEPT_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# Above this share of --worker-connections a worker is under pressure: the
# connections that wait for a request get shorter deadlines (nginx, in the
# same spot, reuses its idle connections for new clients).
PRESSURE = 0.75
PRESSURED_KEEPALIVE = 1.0       # at most, for an idle keep-alive connection
PRESSURED_HEAD_TIMEOUT = 5.0    # at most, for a request head to arrive
# At the limit, this share of the connections that may be dropped (at least
# one, at most EVICT_MOST) is closed at once, so the search for them is paid
# once per batch of new clients, not once per client (nginx drains up to 32).
EVICT_SHARE, EVICT_MOST = 1 / 8, 32


def has_input(fd):
    """Is there something to read on ``fd`` (bytes or an EOF) right now?
    (poll: select() can not take descriptors past 1023.)"""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def io_deadline(started, timeout, transferred, min_rate):
    """When a transfer that began at ``started`` and has moved
    ``transferred`` bytes is too slow: ``timeout`` seconds, plus one for
    every ``min_rate`` bytes (a rate of 0: the timeout bounds it all; a
    timeout of 0: never)."""
    if not timeout:
        return NEVER
    return started + timeout + (transferred / min_rate if min_rate else 0.0)


def blocked_on(exc):
    """What a non-blocking socket call (recv, send, sendmsg; TLS reads and
    writes; sendfile from the loop) that raised the OSError ``exc`` waits
    for: READ, WRITE (TLS must write first), or 0 when a signal interrupted
    it (call again). Any other error: the client is gone (ClientGone).
    (A plain EAGAIN, BlockingIOError, is in WANT_READ: a read waits for
    READ; a write that meets it ignores the answer, its rest waiting for
    the socket to be writable.)"""
    if isinstance(exc, WANT_READ):
        return READ
    if isinstance(exc, WANT_WRITE):
        return WRITE
    if isinstance(exc, InterruptedError):
        return 0
    raise ClientGone() from None


class Complaints:
    """Problems that may recur many times a second, logged at most once per
    COMPLAINT_INTERVAL each: the first at once, the rest as a count on the
    next line (flush() writes what is left, once a second). ``text`` has
    one %d, for the count; it is also the problem's key."""

    __slots__ = ("log", "pending")

    def __init__(self, log):
        self.log = log
        self.pending = {}       # text -> [count since the last line, level, logged at]

    def note(self, level, text, count=1):
        entry = self.pending.get(text)
        if entry is None:
            entry = self.pending[text] = [0, level, -NEVER]
        entry[0] += count
        now = time.monotonic()
        if now - entry[2] >= COMPLAINT_INTERVAL:
            self.write(text, entry, now)

    def flush(self):
        now = time.monotonic()
        for text, entry in list(self.pending.items()):
            if entry[0] and now - entry[2] >= COMPLAINT_INTERVAL:
                self.write(text, entry, now)
            elif not entry[0] and now - entry[2] > 60:
                del self.pending[text]      # over: the next one is logged at once

    def write(self, text, entry, now):
        count, entry[0], entry[2] = entry[0], 0, now
        self.log.log(entry[1], text, count)


class WorkerRecord:
    """The master's record of one worker process, built whole in
    spawn_worker() before the fork (the pid once it is known). The hooks
    that run in the master (pre_fork, child_exit) get this object."""

    def __init__(self, age, generation, slot, scoreboard, cfg, log, listeners):
        self.pid = None
        self.age = age
        self.generation = generation    # OUTDATED once it asked to be replaced
        self.slot = slot                # its Scoreboard slot
        self.spawned_at = time.monotonic()
        self.booted = False
        self.aborted_at = None          # when the master sent SIGABRT (timeout)
        self.retired_at = None          # when the master asked it to stop
        self.tmp = Heartbeat(scoreboard, slot)      # gunicorn's name, for hooks
        self.cfg = cfg
        self.log = log
        self.listeners = listeners      # the master's list it was forked with
        # A channel for connections handed between workers (see hand_off),
        # and one for the master to wake a sync worker's handoff watch.
        self.channel = open_channel()
        self.poke = open_channel()
        self.seen_in_app = 0.0          # its app's request, as the master last saw it

    @property
    def timeout(self):
        return self.cfg.timeout

    def __str__(self):
        return "<worker %s>" % self.pid


class Worker:
    """One worker process: its own state and its event loop.

    Built in the child after the fork, from the master's WorkerRecord;
    ``run()`` never returns into the master's code. The hooks that run in
    the worker (post_fork, post_worker_init, pre_request, post_request,
    worker_int, worker_abort, worker_exit) get this object.
    """

    def __init__(self, record, ppid, listeners, app, cfg, log, scoreboard, ssl_context):
        self.pid = record.pid
        self.age = record.age
        self.ppid = ppid
        self.sockets = listeners
        self.listeners = list(listeners)    # as forked: their index names them to the master
        self.channel = record.channel[1]    # connections handed over, both ways
        self.poke = record.poke[1]          # sync: the master says "hand over"
        self.app = app
        self.cfg = cfg
        self.log = log
        self.tmp = record.tmp
        self.timeout = cfg.timeout
        # The master takes a heartbeat older than --timeout for a stuck
        # loop, and the tick times the app threads: tick four times per
        # timeout (gunicorn's workers notify twice), once a second at most.
        self.beat_interval = min(HEARTBEAT_INTERVAL, cfg.timeout / 4) if cfg.timeout \
            else HEARTBEAT_INTERVAL
        self.threads = cfg.threads      # app slots; 1: the loop runs the app
        # The default pre_request only logs at debug level: not called at all
        # when that level is off (a call per request is worth saving).
        self.pre_request = None if cfg.pre_request is log_request_start and \
            not log.error_log.isEnabledFor(logging.DEBUG) else cfg.pre_request
        self.scoreboard = scoreboard
        self.slot = record.slot
        # Our metric counters in shared memory (see COUNTER_CELLS): the loop
        # thread is their one writer. A request's cell is counted at once;
        # the running sums below, which every request adds to, reach their
        # cells once a second and as we exit (publish_sums): a plain
        # attribute costs the hot path a third of a shared cell.
        self.cells, self.seconds = scoreboard.counters(record.slot)
        self.seconds_in_app = 0.0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.ssl_context = ssl_context
        self.booted = False
        self.alive = True
        self.draining = False           # stopping: no new connections
        self.retiring = False           # an app thread timed out: wait for TERM
        self.recycling = False          # max_requests or max_worker_memory reached
        self.recycle_reason = 0         # see RECYCLE_REASONS
        self.backlog = []               # (sock, peer, listener) taken on TERM
        self.nr = 0
        self.max_requests = 0
        self.selector = None
        self.connections = set()
        self.accepting = False
        self.in_app = {}                # connection -> its Response, while in an app slot
        self.timed_out = set()          # connections whose app thread is past --timeout
        self.waiting = collections.deque()      # (since, conn, request) until a thread is free
        self.handed_back = collections.deque()  # connections the app threads are done with
        self.pipelined = collections.deque()    # connections with requests still waiting
        self.deferred = collections.deque()     # threaded: (move after, conn) left unread
        self.app_since = 0.0            # sync: when the app got its request (0: it has none)
        self.app_lock = None            # sync: the loop gives it up only for the app
        self.app_queue = None           # threaded: what the app threads take work from
        self.thread_names = {}          # threaded: ident -> name, for timeout reports
        self.idle_threads = 0
        self.wakeup_pipe = None
        self.reopen_logs = False
        self.last_tick = 0.0
        self.mtimes = {}                # --reload: path -> mtime
        self.date = (0, b"")
        self.header_cache = {}          # (name, value) -> (lower name, line bytes)
        self.environ_keys = dict(HEADER_KEYS)   # header name -> environ key
        self.base_environ = {}
        self.scratch = None             # made in serve(): see Connection.read_body()
        self.body_memory = BodyMemory(cfg.body_memory_limit, cfg.body_buffer_size, cfg.threads)
        self.secure_headers = secure_header_keys(cfg)
        self.max_head = 0
        self.complaints = Complaints(log)
        self.accept_paused_until = 0.0  # accept() failed for want of descriptors
        self.accept_backoff = 0.0       # and how long the last pause was
        self.under_pressure = False     # above PRESSURE of --worker-connections

    # -- process setup -----------------------------------------------------

    @property
    def wsgi(self):
        """gunicorn's name for the app, which hooks read (and which
        post_worker_init may replace, wrapping the app)."""
        return self.app

    @wsgi.setter
    def wsgi(self, app):
        self.app = app

    def run(self):
        """In the worker, after fork: signals, app, post_worker_init, loop."""
        self.init_signals()
        if "random" in sys.modules:
            sys.modules["random"].seed()  # workers must not share a random sequence
        self.max_requests = self.cfg.max_requests
        if self.max_requests and self.cfg.max_requests_jitter:
            import random
            self.max_requests += random.randint(0, self.cfg.max_requests_jitter)
        if self.app is None:
            self.app = load_app(self.cfg.app_uri)
        switch_user(self.cfg)
        self.cfg.post_worker_init(self)
        self.booted = True
        self.scoreboard.mark_booted(self.slot)
        self.wake_master()      # it may now retire the worker we replace
        try:
            self.serve()
        finally:
            self.publish_sums()     # (a quick exit or a timeout raises SystemExit)

    def init_signals(self):
        """Handlers only record, except QUIT/INT (quick exit) and ABRT (stack
        dump), which must interrupt the app where it is."""
        for signum in SIGNAL_NAMES:
            signal.signal(signum, signal.SIG_DFL)
        for name in ("HUP", "TTIN", "TTOU", "USR2", "WINCH"):
            signal.signal(getattr(signal, "SIG" + name), signal.SIG_IGN)
        self.wakeup_pipe = open_wakeup_pipe()
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNAL_NAMES)

    def handle_exit(self, signum, frame):
        self.alive = False
        if self.threads == 1 and self.in_app:
            # The loop is in the app: close the listeners now, so that new
            # clients are refused instead of queued behind a request of
            # unknown length. (With threads the loop is free to do it.)
            self.stop_listening()

    def handle_usr1(self, signum, frame):
        self.reopen_logs = True

    def handle_quit(self, signum, frame):
        self.alive = False
        call_hook(self, "worker_int")
        sys.exit(0)

    def handle_abort(self, signum, frame):
        """SIGABRT from the master: the app overran --timeout (or the loop
        is stuck). Log where, then exit."""
        self.alive = False
        where = "".join(traceback.format_stack(frame))
        request = next((r.request for r in list(self.in_app.values())), None)
        serving = ("while serving %s %s" % (request.method, request.uri)) if request else \
            "outside a request"
        self.log.critical("WORKER TIMEOUT (pid:%s) %s; stack:\n%s", self.pid, serving, where)
        call_hook(self, "worker_abort")
        sys.exit(1)

    # -- the loop ----------------------------------------------------------

    def serve(self):
        """Select on listeners, connections and the wake-up pipe."""
        cfg = self.cfg
        self.max_head = ((cfg.limit_request_line or 65536) + 2 +
                         (cfg.limit_request_fields or 1000) *
                         (cfg.limit_request_field_size or DEFAULT_FIELD_SIZE) + 2)
        self.scratch = memoryview(bytearray(READ_SIZE))
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.wakeup_pipe[0], READ, WAKE)
        for sock in self.sockets:
            sock.setblocking(False)
            self.base_environ[sock] = base_environ(sock, cfg)
        self.selector.register(self.channel, READ, CHANNEL)
        if self.threads > 1:
            self.start_app_threads()
        else:
            self.start_handoff_watch()
        self.set_accepting(True)
        select_ = self.selector.select
        log = self.log
        while True:
            if not self.alive and not self.draining:
                self.start_drain()
            if self.draining and len(self.connections) <= len(self.timed_out):
                return      # (a thread stuck past --timeout dies with the process)
            now = time.monotonic()
            if now - self.last_tick >= self.beat_interval:
                self.tick(now)
            if log.access_pending:
                log.flush_access()
            paused = not self.accepting and self.sockets and not self.retiring and \
                not self.accept_paused_until
            if paused and self.can_accept():
                self.set_accepting(True)    # our share of connections is fair again
                paused = False
            timeout = 0 if self.pipelined else HANDOFF_DELAY if self.deferred else \
                DRAIN_IDLE_GRACE if self.draining else \
                BALANCE_RECHECK if paused else self.beat_interval
            if self.accept_paused_until:
                timeout = min(timeout, self.resume_accepting(now))
            for key, events in select_(timeout):
                data = key.data
                if data is ACCEPT:
                    self.accept(key.fileobj)
                elif data is WAKE:
                    self.on_wake()
                elif data is CHANNEL:
                    self.take_handed_connections()
                elif data.closed:
                    continue    # closed by an earlier event of this batch
                elif data.stage is APP:
                    # The client sent more while its request is in an app
                    # thread: stop watching it until the thread hands it back.
                    self.watch(data, 0)
                elif events & READ:
                    if self.threads > 1 and not self.idle_threads and data.movable():
                        self.defer(data)    # no thread free: leave its request unread
                        continue
                    self.serve_connection(data)
                else:
                    self.send_rest(data)
            for _ in range(len(self.pipelined)):
                conn = self.pipelined.popleft()
                if not conn.closed and conn.stage is HEAD:
                    self.serve_connection(conn)
            if self.deferred:
                self.hand_off_deferred()

    def tick(self, now):
        """Once a second: heartbeat, orphan check, deadlines, app timeouts."""
        self.last_tick = now
        self.scoreboard.beat(self.slot, now)
        self.publish_sums()
        if os.getppid() != self.ppid:
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
        for conn in [c for c in self.connections if c.deadline <= now]:
            self.expire(conn)
        self.check_pressure(now)
        self.complaints.flush()
        if self.threads > 1 and self.timeout and self.in_app:
            self.check_app_timeouts(now)
        if self.cfg.reload and self.alive:
            changed = self.changed_file()
            if changed:
                self.log.info("Worker reloading: %s modified", changed)
                self.alive = False

    def publish_sums(self):
        """The running sums of the metrics, to their cells for the master."""
        self.seconds[DURATION_SUM_CELL] = self.seconds_in_app
        self.cells[RECEIVED_CELL] = self.bytes_received
        self.cells[SENT_CELL] = self.bytes_sent

    def expire(self, conn):
        """A connection's deadline passed: say so if it was sending us
        something (408), then close it. An idle keep-alive connection whose
        next request is already waiting unread (the loop was busy, in the
        app, past its --keep-alive) is not idle: it gets --head-timeout."""
        if conn.stage is HEAD and conn.idle and not conn.buffer and has_input(conn.fd):
            conn.idle = False
            conn.deadline = io_deadline(time.monotonic(), self.cfg.head_timeout, 0, 0)
            return
        if conn.stage is BODY or (conn.stage is HEAD and conn.buffer):
            conn.send_error_quietly(RequestTimeout.status)
            self.count_rejection(RequestTimeout.status)
        elif conn.stage is SEND:
            self.log.info("Closing the connection of %s: it took its response too slowly",
                          conn.peer_text)
        self.close_connection(conn)

    def changed_file(self):
        """--reload: a source file (of a loaded module, or an extra file)
        whose mtime changed since the last look, else None. Polls: stdlib."""
        paths = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        for path in filter(None, paths + self.cfg.reload_extra_files):
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            if self.mtimes.setdefault(path, mtime) != mtime:
                return path
        return None

    def on_wake(self):
        """A signal, or app threads handing connections back."""
        drain_wakeup_pipe(self.wakeup_pipe[0])
        if self.reopen_logs:
            self.reopen_logs = False
            self.log.reopen()
        while self.handed_back:
            conn = self.handed_back.popleft()
            self.idle_threads += 1
            # First come, first served: a request already read, or a
            # connection left unread, whichever has waited longer.
            if self.waiting and (not self.deferred or self.waiting[0][0] <= self.deferred[0][0]):
                self.dispatch(*self.waiting.popleft()[1:])
            elif self.deferred:
                self.take_deferred()
            self.scoreboard.set_busy(self.slot, self.threads - self.idle_threads)
            if self.finish_request(conn) and conn.has_pending():
                self.serve_connection(conn)

    def watch(self, conn, events):
        """Select ``conn`` for these events (0: not at all)."""
        if events == conn.events:
            return
        if not conn.events:
            self.selector.register(conn.sock, events, conn)
        elif events:
            self.selector.modify(conn.sock, events, conn)
        else:
            self.selector.unregister(conn.sock)
        conn.events = events

    # -- accepting ---------------------------------------------------------

    def set_accepting(self, accepting):
        if accepting == self.accepting or (accepting and not self.sockets):
            # (No listeners: TERM closed them, maybe while the app ran and
            # select() still had one in its batch; accepting stays off.)
            return
        self.accepting = accepting
        for sock in self.sockets:
            if accepting:
                self.selector.register(sock, READ, ACCEPT)
            else:
                self.selector.unregister(sock)

    def stop_listening(self):
        """Take the connections waiting in the listen backlog (a graceful
        stop serves them instead of resetting them), then close the
        listeners. A worker that is recycled leaves the backlog to others,
        and one near --max-requests takes only what it may still serve."""
        for sock in self.sockets:
            while not (self.recycling or self.retiring) and (not self.max_requests or (
                    self.max_requests - self.nr > len(self.connections) + len(self.backlog))):
                try:
                    client = sock.accept()
                except OSError:
                    break
                self.backlog.append(client + (sock,))
            if self.accepting:
                self.selector.unregister(sock)
            sock.close()
        self.accepting = False
        self.sockets = []

    def start_drain(self):
        """No new connections; those waiting for a request get a short grace
        to send it (answered with Connection: close), then are closed."""
        self.draining = True
        self.scoreboard.mark_draining(self.slot)
        self.stop_listening()
        for sock, peer, listener in self.backlog:
            self.adopt(sock, peer, listener)
        self.backlog = []
        grace = time.monotonic() + DRAIN_IDLE_GRACE
        for conn in self.connections:
            if conn.stage is HEAD:
                conn.deadline = min(conn.deadline, grace)

    def can_accept(self):
        """Room for one more connection? Near ``max_requests`` every open
        connection may still bring one request, so they count against it."""
        count = len(self.connections)
        if count >= self.cfg.worker_connections or self.retiring:
            return False
        if self.max_requests and self.max_requests - self.nr <= count:
            return False
        return self.fair_to_accept()

    def accept(self, listener):
        if not self.accepting:
            # Stopped accepting (a TERM closed the listeners while the app
            # ran, or we are full) after select() reported this listener.
            return
        if self.threads > 1 and self.idle_threads < self.threads and not self.can_accept():
            self.set_accepting(False)   # another worker is idle: it takes this one
            return
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:
            if exc.errno in ACCEPT_RESOURCE_ERRORS:
                self.pause_accepting(exc)
                return
            raise
        self.accept_backoff = 0.0
        self.adopt(sock, peer, listener)

    def adopt(self, sock, peer, listener):
        sock.setblocking(False)
        if isinstance(peer, tuple):     # TCP (a unix socket's peer is a path);
            # not sock.family: its enum conversion costs a microsecond
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock, peer, listener, self)
        self.connections.add(conn)
        self.scoreboard.set_connections(self.slot, len(self.connections))
        self.cells[CONNECTIONS_CELL] += 1
        if self.threads > 1:
            self.watch(conn, READ)
        if len(self.connections) >= self.cfg.worker_connections:
            self.make_room(conn)
        elif self.under_pressure:
            conn.deadline = min(conn.deadline, time.monotonic() + PRESSURED_HEAD_TIMEOUT)
        if not self.can_accept():
            self.set_accepting(False)
        if self.threads > 1 and not self.idle_threads:
            self.defer(conn)
            return
        self.serve_connection(conn)
        # Sync: the request has mostly arrived with the connection, and is
        # served before the loop selects on it, so a connection closed after
        # its response costs no epoll_ctl (a kept one is watched from
        # response_sent on).
        if not conn.events and not conn.closed:
            self.watch(conn, READ)

    def pause_accepting(self, exc):
        """accept() found no descriptor (or memory) for a new connection:
        stop accepting for ACCEPT_BACKOFF_MIN, doubling up to
        ACCEPT_BACKOFF_MAX while it lasts (a connection we close resumes it
        at once, see close()). The connections we have are served meanwhile;
        the clients wait in the listen backlog."""
        self.accept_backoff = min(ACCEPT_BACKOFF_MAX,
                                  max(ACCEPT_BACKOFF_MIN, self.accept_backoff * 2))
        self.accept_paused_until = time.monotonic() + self.accept_backoff
        self.set_accepting(False)
        self.complaints.note(logging.ERROR, "accept() failed %%d time(s): %s; pausing "
                             "accepts (%.1fs, up to %.1fs while it lasts)"
                             % (os.strerror(exc.errno), ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX))

    def resume_accepting(self, now):
        """In the loop, while accepting is paused: accept again once the
        pause is over. Seconds until then (for select's timeout)."""
        left = self.accept_paused_until - now
        if left > 0:
            return left
        self.accept_paused_until = 0.0
        if not self.accepting and not self.draining and self.can_accept():
            self.set_accepting(True)
        return NEVER

    def make_room(self, newest):
        """At --worker-connections: close the connections worth least, so
        that new clients are still accepted. Idle keep-alive connections
        first (their client can reconnect at no loss), then the incomplete
        heads that have waited longest (nearest their deadline); never a
        request that has reached its body, the app, or its response."""
        idle, partial = [], []
        for conn in self.connections:
            if conn.stage is HEAD and conn is not newest:
                if conn.idle and not conn.buffer:
                    idle.append(conn)
                else:
                    partial.append(conn)
        count = max(1, min(EVICT_MOST, int((len(idle) + len(partial)) * EVICT_SHARE)))
        idle.sort(key=lambda conn: conn.deadline)      # the longest idle first
        victims = idle[:count]
        if len(victims) < count:
            partial.sort(key=lambda conn: conn.deadline)
            victims += partial[:count - len(victims)]
        if not victims:
            return
        dropped_idle = sum(1 for conn in victims if conn.idle and not conn.buffer)
        for conn in victims:
            self.close_connection(conn)
        limit = self.cfg.worker_connections
        if dropped_idle:
            self.complaints.note(logging.WARNING, "Closed %%d idle keep-alive connection(s) "
                                 "to make room (--worker-connections %d)" % limit, dropped_idle)
        if len(victims) > dropped_idle:
            self.complaints.note(logging.WARNING, "Closed %%d connection(s) whose request head "
                                 "had not arrived, to make room (--worker-connections %d)"
                                 % limit, len(victims) - dropped_idle)

    def check_pressure(self, now):
        """Once a second: above PRESSURE of --worker-connections, the
        connections waiting for a request get at most PRESSURED_KEEPALIVE
        (idle) or PRESSURED_HEAD_TIMEOUT (a head arriving) from now; below,
        the deadlines are as configured again for what comes next."""
        self.under_pressure = len(self.connections) > self.cfg.worker_connections * PRESSURE
        if not self.under_pressure:
            return
        idle_until = now + min(self.cfg.keepalive or NEVER, PRESSURED_KEEPALIVE)
        head_until = now + min(self.cfg.head_timeout or NEVER, PRESSURED_HEAD_TIMEOUT)
        for conn in self.connections:
            if conn.stage is HEAD:
                until = idle_until if conn.idle and not conn.buffer else head_until
                if conn.deadline > until:
                    conn.deadline = until

    def close_connection(self, conn):
        """Close a connection the loop holds (never one in an app slot). A
        response still on its way is logged with the bytes that left."""
        if conn.closed:
            return
        if conn.response is not None:
            self.log_access(conn.response)
            conn.response = None
        self.forget(conn)
        if not self.accepting and not self.draining and self.can_accept():
            self.set_accepting(True)

    def forget(self, conn):
        """Drop a connection and close our descriptor of it."""
        self.connections.discard(conn)
        self.timed_out.discard(conn)
        self.scoreboard.set_connections(self.slot, len(self.connections))
        if conn.events:
            self.selector.unregister(conn.sock)
            conn.events = 0
        conn.close()

    # -- one connection, request by request --------------------------------

    def serve_connection(self, conn):
        """In the loop: act on what has arrived on ``conn``. Each complete
        request goes to an app slot (in sync mode the loop runs it at once);
        then the next one, until one is incomplete or the output backs up.
        A deep pipeline gets PIPELINE_TURN requests, then waits its turn
        behind the other connections' events."""
        for _ in range(PIPELINE_TURN):
            try:
                request = self.read_request(conn)
            except ClientGone:
                self.close_connection(conn)
                return
            except HTTPError as exc:
                self.reject(conn, exc)
                return
            if request is None:
                return
            self.count_request(request)
            if self.threads > 1:
                self.dispatch(conn, request)
                return
            conn.stage = APP
            self.app_lock.release()     # the handoff watch may act while the app runs
            try:
                self.run_request(conn, request)
            finally:
                self.app_lock.acquire()
            if not self.finish_request(conn) or not conn.has_pending():
                return
        self.pipelined.append(conn)

    def read_request(self, conn):
        """The next complete request on ``conn`` (head and body), or None
        while it is still arriving."""
        request = conn.request
        if request is None:
            head = conn.read_head()
            if head is None:
                return None
            self.bytes_received += len(head) + 4     # with its blank line
            request = parse_head(head, self.cfg)
            request.peer_addr = conn.peer
            if not (request.chunked or request.content_length):
                return request
            self.start_body(conn, request)
        if not conn.read_body():
            return None
        self.bytes_received += conn.body.received
        request.body = conn.body.wsgi_input()
        request.trailers = conn.body.trailers()
        conn.request = None         # (conn.body is closed after the request)
        return request

    def start_body(self, conn, request):
        """A head with a body: refuse a body that is too large (413) before
        it is sent, else receive it (sending 100 Continue if asked for: the
        body is read here, so a client that waits for it can not hold an
        app slot)."""
        limit = self.cfg.limit_request_body
        if limit and request.content_length is not None and request.content_length > limit:
            raise ContentTooLarge("Content-Length %d is over --limit-request-body %d"
                                  % (request.content_length, limit))
        conn.request = request
        conn.body = IncomingBody(request, self.cfg, self.body_memory)
        conn.stage = BODY
        conn.io_started = time.monotonic()
        conn.deadline = io_deadline(conn.io_started, self.cfg.body_timeout, 0,
                                    self.cfg.body_min_rate)
        if request.expect_continue and not conn.buffer:
            conn.write(CONTINUE)

    def count_request(self, request):
        """In the loop, as a request goes to an app slot: count it, and
        decide whether its connection may be kept."""
        self.nr += 1
        if self.max_requests:
            self.count_against_max_requests(request)
        if not self.alive or not self.cfg.keepalive or self.retiring:
            request.keep_alive = False

    def dispatch(self, conn, request):
        """Threaded: give the request to a free app thread, or queue it."""
        conn.stage = APP
        conn.deadline = NEVER
        if not self.idle_threads:
            self.waiting.append((time.monotonic(), conn, request))
            return
        self.idle_threads -= 1
        self.scoreboard.set_busy(self.slot, self.threads - self.idle_threads)
        self.app_queue.put((conn, request))

    def start_app_threads(self):
        import queue
        import threading
        self.app_queue = queue.SimpleQueue()
        for number in range(self.threads):
            thread = threading.Thread(target=self.app_thread, name="app-%d" % number,
                                      daemon=True)
            thread.start()
            self.thread_names[thread.ident] = thread.name
        self.idle_threads = self.threads

    def app_thread(self):
        """An app slot of a threaded worker: one request at a time, from
        pre_request to post_request, then the connection goes back to the
        loop (through handed_back and a byte on the wake-up pipe)."""
        take = self.app_queue.get
        while True:
            conn, request = take()
            self.run_request(conn, request)
            self.handed_back.append(conn)
            try:
                os.write(self.wakeup_pipe[1], b"\0")
            except OSError:
                pass    # full: the loop is awake already

    def run_request(self, conn, request):
        """In an app slot (the app's thread): pre_request, the environ, the
        app, its response, close() of its iterable, post_request. Never
        raises: what the connection does next is left for finish_request()."""
        response = conn.response = Response(conn, request, self)
        self.in_app[conn] = response
        if self.threads == 1:
            self.app_since = response.in_app_since
            self.scoreboard.app_started(self.slot, response.in_app_since)
        environ = None
        try:
            if self.pre_request is not None:
                self.pre_request(self, request)
            environ = response.environ = build_environ(request, conn, self)
            result = self.app(environ, response.start_response)
            try:
                response.send_result(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            response.finish()
        except ClientGone:
            conn.gone = True
        except Exception as exc:
            self.handle_error(conn, request, response, exc)
        finally:
            del self.in_app[conn]
            self.app_since = 0.0
            response.duration = time.monotonic() - response.in_app_since
        if self.cfg.post_request is not no_hook:
            call_hook(self, "post_request", request, environ, response)

    def finish_request(self, conn):
        """In the loop, once per request after the app: the scoreboard, the
        memory check, then the connection's next step. True if it may read
        its next request now."""
        now = time.monotonic()
        if self.threads == 1:
            self.scoreboard.app_finished(self.slot, self.nr, now)
        else:
            self.scoreboard.count(self.slot, self.nr)
        # The metrics: the request's one cell (see COUNTER_CELLS), its time
        # in the app, the bytes of its response (as the access log's %b, and
        # the head). Inline: this is the hot path.
        response = conn.response
        duration = response.duration
        self.cells[conn.reused + (response.status_code or 500) // 100 * CLASS_STRIDE +
                   METHOD_CELL.get(response.request.method, OTHER_METHOD_CELL) +
                   (0 if duration <= FASTEST_BUCKET else
                    bisect.bisect_left(DURATION_BUCKETS, duration))] += 1
        conn.reused = REUSED
        self.seconds_in_app += duration
        self.bytes_sent += response.head_length + response.sent
        if conn.body is not None:
            conn.body.close()
            conn.body = None
        if self.cfg.max_worker_memory and not self.recycling:
            self.check_memory()
        if conn.gone:
            self.close_connection(conn)
            return False
        out = conn.out
        if out is not None and out.segments:
            conn.stage = SEND
            conn.io_started = now
            conn.io_count = out.sent
            conn.deadline = io_deadline(now, self.cfg.send_timeout, 0, self.cfg.send_min_rate)
            self.watch(conn, WRITE)
            return False
        return self.response_sent(conn, now)

    def send_rest(self, conn):
        """In the loop: the connection can take more of its response."""
        out = conn.out
        try:
            done = out.send(conn.sock, conn.tls)
        except ClientGone:
            self.close_connection(conn)
            return
        if not done:
            conn.deadline = io_deadline(conn.io_started, self.cfg.send_timeout,
                                        out.sent - conn.io_count, self.cfg.send_min_rate)
            return
        if self.response_sent(conn, time.monotonic()) and conn.has_pending():
            self.serve_connection(conn)

    def response_sent(self, conn, now):
        """The whole response has left: log it, then keep the connection
        for its next request (True) or close it."""
        response = conn.response
        conn.response = None
        log = self.log
        if log.access_enabled or log.statsd:
            log.access(response, response.request, response.environ or {}, response.duration)
        if response.must_close:
            self.close_connection(conn)
            return False
        conn.stage = HEAD
        conn.idle = True
        conn.deadline = now + self.cfg.keepalive
        if self.draining:
            conn.deadline = min(conn.deadline, now + DRAIN_IDLE_GRACE)
        if conn.events != READ:
            self.watch(conn, READ)
        return True

    def log_access(self, response):
        log = self.log
        if log.access_enabled or log.statsd:
            log.access(response, response.request, response.environ or {}, response.duration)

    # -- fair dispatch: handing connections to a worker with a free slot ----

    def fair_to_accept(self):
        """Accept while we hold at most BALANCE_SLACK more connections than
        the least loaded worker that can accept: connections spread evenly.
        (A sync worker whose app has had a request for a while can not
        accept; it does not count.) A threaded worker with requests in its
        app leaves new connections to a worker that is idle and may accept."""
        stuck = time.monotonic() - BALANCE_STUCK
        mine = len(self.connections)
        others = [(busy, connections) for busy, connections, app_since
                  in self.scoreboard.others(self.slot)
                  if not (busy and app_since and app_since < stuck)]
        # Every worker decides from the same numbers, so that one always
        # accepts: the least loaded one is within the slack, and an idle
        # worker within it never leaves a connection to another.
        most = min([mine] + [connections for _, connections in others]) + BALANCE_SLACK
        if self.threads > 1 and self.idle_threads < self.threads and \
                any(not busy and connections <= most for busy, connections in others):
            return False    # threaded and busy: a new request is better off there
        return mine <= most

    def free_slot_elsewhere(self):
        threads = self.threads
        return any(busy < threads for busy, _, _ in self.scoreboard.others(self.slot))

    def defer(self, conn):
        """Threaded, every app thread busy: a connection whose request has
        begun to arrive is left unread (so it can still move) until a thread
        is free here, or for HANDOFF_DELAY, then handed to a free worker."""
        self.watch(conn, 0)
        conn.deadline = NEVER       # it is waiting for us, not we for it
        self.deferred.append((time.monotonic(), conn))

    def take_deferred(self):
        """A thread is free: the connections that have waited longest, until
        one brings a request for it."""
        while self.deferred and self.idle_threads:
            _, conn = self.deferred.popleft()
            if not conn.closed:
                self.watch(conn, READ)
                self.serve_connection(conn)

    def hand_off_deferred(self):
        """Deferred connections that waited HANDOFF_DELAY go to a worker with
        a free slot, if there is one (else they wait for our threads)."""
        now = time.monotonic()
        moving = now - HANDOFF_DELAY
        if self.deferred[0][0] > moving or not self.free_slot_elsewhere():
            return
        while self.deferred and self.deferred[0][0] <= moving:
            since, conn = self.deferred.popleft()
            if not conn.closed and not self.hand_off(conn):
                self.deferred.appendleft((since, conn))
                return

    def start_handoff_watch(self):
        import threading
        self.app_lock = threading.Lock()
        self.app_lock.acquire()
        self.poke.setblocking(True)
        threading.Thread(target=self.watch_while_in_app, name="handoff", daemon=True).start()

    def watch_while_in_app(self):
        """Sync mode, on a thread of its own, asleep until the master pokes
        it (Arbiter.hurry_stuck_workers): our app has had a request for a
        while, so a request that arrives on another of our connections would
        wait for it, and another worker is free. Hand such connections over.
        The thread acts only while it holds app_lock, which the loop gives up
        only while the app runs: the loop never meets a connection on its
        way out. (It sleeps in recv(), so it costs the loop nothing.)"""
        while True:
            try:
                self.poke.recv(64)
            except OSError:
                return
            if not self.app_lock.acquire(blocking=False):
                continue
            try:
                if self.app_since and self.free_slot_elsewhere():
                    self.hand_off_waiting()
            finally:
                self.app_lock.release()

    def hand_off_waiting(self):
        """Hand over every connection whose next request has begun to arrive."""
        movable = [conn for conn in list(self.connections) if conn.movable()]
        if not movable:
            return
        poller = select.poll()
        for conn in movable:
            poller.register(conn.fd, select.POLLIN)
        ready = {fd for fd, _ in poller.poll(0)}
        for conn in movable:
            if conn.fd in ready:
                self.hand_off(conn)

    def hand_off(self, conn):
        """Give a connection to the master, for a worker with a free slot:
        its descriptor, its listener and what we know of the peer. What has
        arrived of its request is still in the socket. True once sent."""
        peer = conn.peer
        # listener, PROXY header still to come, reused (for the metrics),
        # bounced (see take_handed_connections), peer
        message = "%d\t%d\t%d\t0\t%s" % (self.listeners.index(conn.listener), conn.proxy_pending,
                                          conn.reused != 0,
                                          "%s\t%d" % peer[:2] if isinstance(peer, tuple) else "")
        try:
            send_connection(self.channel, message.encode(), conn.fd)
        except OSError:
            return False
        self.forget(conn)
        return True

    def take_handed_connections(self):
        """In the loop: connections the master hands us; serve them here."""
        while True:
            try:
                message, fds = receive_connection(self.channel)
            except (BlockingIOError, InterruptedError):
                return
            if message is None:
                continue
            for extra in fds[1:]:
                os.close(extra)
            if not fds:
                continue
            index, proxy_pending, reused, bounced, host_port = message.decode().split("\t", 4)
            if bounced == "0" and self.max_requests and \
                    self.max_requests - self.nr <= len(self.connections):
                # No request left for it under --max-requests: back to the
                # master, once, for another worker.
                try:
                    send_connection(self.channel, ("%s\t%s\t%s\t1\t%s" % (
                        index, proxy_pending, reused, host_port)).encode(), fds[0])
                except OSError:
                    pass
                else:
                    os.close(fds[0])
                    continue
            host, _, port = host_port.partition("\t")
            sock = socket.socket(fileno=fds[0])
            sock.setblocking(False)
            conn = Connection(sock, (host, int(port)) if port else "", self.listeners[int(index)],
                              self)
            conn.proxy_pending = proxy_pending == "1"
            conn.reused = REUSED if reused == "1" else 0
            self.connections.add(conn)
            self.scoreboard.set_connections(self.slot, len(self.connections))
            self.watch(conn, READ)
            self.serve_connection(conn)

    def check_app_timeouts(self, now):
        """Threaded: a request past --timeout in the app. Its thread can not
        be stopped, so log its stack, stop accepting and ask the master for
        a successor; the master then stops us gracefully (the other
        requests finish) and we exit, the stuck thread with us."""
        for conn, response in list(self.in_app.items()):
            if conn in self.timed_out or now - response.in_app_since <= self.timeout:
                continue
            self.timed_out.add(conn)
            frame = sys._current_frames().get(response.thread)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "?"
            request = response.request
            self.log.critical("WORKER TIMEOUT (pid:%s) while serving %s %s (thread %s, "
                              "%.1fs in the app); stack:\n%s", self.pid, request.method,
                              request.uri, self.thread_names.get(response.thread),
                              now - response.in_app_since,
                              where)
            call_hook(self, "worker_abort")
            if not self.retiring:
                self.retiring = True
                self.set_accepting(False)
                self.recycle_reason = self.recycle_reason or RECYCLE_TIMEOUT
                self.ask_for_successor()

    def ask_for_successor(self):
        """Say why we want replacing (the scoreboard) and wake the master,
        which boots our successor before it stops us."""
        self.scoreboard.ask_for_successor(self.slot, self.recycle_reason)
        self.wake_master()

    def wake_master(self):
        """An empty datagram on our channel: the master looks at the
        scoreboard now rather than within a second."""
        try:
            self.channel.send(b"")
        except OSError:
            pass

    def app_waited_for_client(self, response, seconds):
        """In an app slot: the app waited ``seconds`` for a slow client to
        take its response; that is not time in the app (--timeout)."""
        response.in_app_since += seconds
        if self.threads == 1:
            self.scoreboard.app_started(self.slot, response.in_app_since)
            self.scoreboard.beat(self.slot, time.monotonic())

    def count_against_max_requests(self, request):
        """Near ``max_requests``, every open connection may still bring one
        request: tell clients to close in time, so no worker serves more than
        its limit. Ask the master early for a successor (spawn before kill)."""
        left = self.max_requests - self.nr
        if left <= 0:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
            self.recycling = True
        if left < len(self.connections):
            request.keep_alive = False
        if left <= max(len(self.connections), self.max_requests // 10) and \
                not self.recycle_reason:
            self.recycle_reason = RECYCLE_MAX_REQUESTS
            self.ask_for_successor()
        if self.accepting and not self.can_accept():
            self.set_accepting(False)   # no room left for one more connection's request

    def check_memory(self):
        """--max-worker-memory: after a request that took the peak RSS over
        the limit, stop gracefully (the master replaces us)."""
        import resource
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        if peak_mb > self.cfg.max_worker_memory:
            self.log.warning("Worker (pid:%s) RSS %d MB is over --max-worker-memory %d MB; "
                             "recycling it", self.pid, peak_mb, self.cfg.max_worker_memory)
            self.alive = False
            self.recycling = True
            self.recycle_reason = RECYCLE_MEMORY
            self.ask_for_successor()

    # -- errors --------------------------------------------------------------

    def reject(self, conn, exc):
        """In the loop: a request that is refused before it reaches the app
        (its HTTPError says the status): the error page, then close. When
        the trouble is ours (``server_side``: no room for a body), it is
        the same for every client that meets it: one line per interval,
        with a count, instead of one per client."""
        if exc.server_side:
            self.complaints.note(logging.ERROR, "Answered %%d request(s) with %d: %s"
                                 % (exc.status, exc.detail))
        else:
            self.log.warning("Invalid request from ip=%s: %s", conn.peer_ip(), exc.detail)
        conn.send_error_quietly(exc.status)
        self.count_rejection(exc.status)
        if self.log.access_enabled or self.log.statsd:
            self.log.access(ErrorResponse(exc.status), None, {}, 0.0)
        self.close_connection(conn)

    def count_rejection(self, status):
        """In the loop: a request refused with ``status`` before the app,
        and its error page."""
        self.cells[REJECTED_CELL.get(status, REJECTED_OTHER_CELL)] += 1
        self.bytes_sent += len(error_page(status))

    def handle_error(self, conn, request, response, exc):
        """In an app slot: the one place an exception becomes an HTTP answer
        (its ``status``, else 500), or a close once the head has left."""
        status = getattr(exc, "status", 500)
        if isinstance(exc, HTTPError):
            self.log.warning("Invalid request from ip=%s: %s", conn.peer_ip(), exc.detail)
        elif isinstance(exc, ResponseError):
            self.log.error("Error in the app's response to %s: %s", request.uri, exc)
        else:
            self.log.exception("Error handling request %s", request.uri)
        response.must_close = True
        if response.head_sent:
            return  # too late for an error page: closing says it
        response.become_error(status)
        try:
            conn.write(error_page(status))
        except ClientGone:
            conn.gone = True

    # -- response helpers shared by the app threads ------------------------

    def checked_header(self, item):
        """(lower-case name, encoded line) of a response header, after the
        checks of PEP 3333 and RFC 9110; remembered, since apps send the same
        headers again and again."""
        known = self.header_cache.get(item) if type(item) is tuple else None
        if known is None:
            known = check_response_header(item)
            if len(self.header_cache) >= HEADER_CACHE_SIZE:
                self.header_cache.clear()
            self.header_cache[item] = known
        return known

    def date_header(self):
        """The Date header value, formatted once per second."""
        now = int(time.time())
        date = self.date
        if date[0] != now:
            date = self.date = (now, http_date(now))
        return date[1]

    def __str__(self):
        return "<worker %s>" % self.pid


class Connection:
    """A client connection: its socket, what has arrived and not been used
    yet, what has not left yet, its stage and deadline. Non-blocking."""

    __slots__ = ("sock", "peer", "listener", "worker", "buffer", "scanned", "deadline", "fd",
                 "peer_text", "trusted", "proxy_pending", "tls", "tls_pending", "stage",
                 "idle", "request", "body", "response", "out", "gone", "closed", "events",
                 "io_started", "io_count", "reused")

    def __init__(self, sock, peer, listener, worker):
        self.sock = sock
        self.peer = peer
        self.listener = listener
        self.worker = worker
        self.buffer = b""               # received, not yet parsed
        self.scanned = 0                # how much of a partial head was searched
        self.stage = HEAD
        self.idle = False               # between requests, nothing received yet
        self.deadline = io_deadline(time.monotonic(), worker.cfg.head_timeout, 0, 0)
        self.fd = sock.fileno()
        self.peer_text = "%s:%s" % peer[:2] if isinstance(peer, tuple) else "unix"
        self.trusted = is_trusted_proxy(peer, worker.cfg)
        self.proxy_pending = worker.cfg.proxy_protocol != "off"
        self.tls = self.tls_pending = worker.ssl_context is not None
        self.request = None             # the request whose body is arriving
        self.body = None                # and that body (an IncomingBody)
        self.response = None            # the response being made or sent
        self.out = None                 # an OutputBuffer, once a client is slow
        self.gone = False               # the client left while the app ran
        self.closed = False
        self.events = 0                 # what the loop selects it for
        self.io_started = 0.0           # when the body (or the rest of the
        self.io_count = 0               # response) began, and bytes so far
        self.reused = 0                 # REUSED once it has served a request

    def read_head(self):
        """The next request head (bytes, without its blank line) if it has
        fully arrived, None if not yet; never blocks. Only new bytes are
        searched, so a head that arrives in small pieces costs its size."""
        if self.proxy_pending and not self.read_proxy_header():
            return None
        if self.tls_pending and not self.start_tls():
            return None
        buffer = self.buffer
        while True:
            if buffer:
                if buffer[:2] == b"\r\n" and len(buffer) >= 4:
                    # RFC 9112 §2.2: one empty line before a request line is
                    # ignored (gunicorn refuses a second one, and so do we).
                    if buffer[2:4] == b"\r\n":
                        raise BadRequest("empty lines before the request line")
                    buffer = self.buffer = buffer[2:]
                    self.scanned = 0
                end = buffer.find(b"\r\n\r\n", self.scanned)
                if end >= 0:
                    head, rest = buffer[:end], buffer[end + 4:]
                    if type(buffer) is not bytes:
                        head, rest = bytes(head), bytes(rest)
                    self.buffer = rest
                    self.scanned = 0
                    return head
                start = max(0, self.scanned - 2)
                if buffer.find(b"\n\n", start) >= 0 or buffer.find(b"\n\r\n", start) >= 0:
                    raise BadRequest("line ending without CR (RFC 9112 §2.2)")
                self.scanned = max(0, len(buffer) - 3)
                self.check_head_size(buffer)
            try:
                data = self.sock.recv(READ_SIZE)
            except WANT_READ:       # (inline: once per request on keep-alive)
                if buffer and self.idle:
                    # The next request has begun: it has --head-timeout.
                    self.idle = False
                    self.deadline = io_deadline(time.monotonic(),
                                                self.worker.cfg.head_timeout, 0, 0)
                return None
            except OSError as exc:
                if blocked_on(exc) == WRITE:
                    self.wait_briefly(select.POLLOUT)
                continue
            if not data:
                raise ClientGone()
            if not buffer:
                buffer = self.buffer = data
            else:
                if type(buffer) is bytes:
                    buffer = self.buffer = bytearray(buffer)
                buffer += data

    def read_body(self):
        """Receive the body of ``self.request`` into ``self.body``: True
        once it is complete (what follows it stays in the buffer), False
        while more is to come. Received into the worker's scratch buffer:
        recv(size) allocates ``size`` bytes and shrinks them to what came,
        and over a large upload that pattern grew the heap for good."""
        body = self.body
        if self.buffer:
            data, self.buffer = self.buffer, b""
            rest = body.feed(data)
            if rest is not None:
                self.buffer = rest
                return True
        scratch = self.worker.scratch
        while True:
            view = body.view
            try:
                if view is not None:
                    size = self.sock.recv_into(view[body.filled:])
                else:
                    size = self.sock.recv_into(scratch)
            except OSError as exc:
                if not blocked_on(exc):
                    continue
                cfg = self.worker.cfg
                self.deadline = io_deadline(self.io_started, cfg.body_timeout,
                                            body.received, cfg.body_min_rate)
                return False
            if not size:
                raise ClientGone()      # the body ended early: nobody to answer
            if view is not None:
                if body.filled_directly(size):
                    return True
                continue
            rest = body.feed(scratch[:size])
            if rest is not None:
                self.buffer = rest
                return True

    def read_proxy_header(self):
        """The PROXY protocol header (v1 or v2) that opens the connection:
        True once it is read (or, in auto mode, known to be absent), False
        while more bytes are needed. The client address it carries becomes
        the peer (REMOTE_ADDR). Bytes are only peeked at past the header's
        end, so a TLS handshake can follow it on the same socket."""
        mode = self.worker.cfg.proxy_protocol
        while True:
            try:
                peeked = self.sock.recv(PROXY_MAX, socket.MSG_PEEK)
            except OSError as exc:
                if not blocked_on(exc):
                    continue
                return False
            if not peeked:
                raise ClientGone()
            data = self.buffer + peeked
            size = None          # of the whole header, once known
            if data[:6] == b"PROXY " and mode in ("v1", "auto"):
                end = data.find(b"\r\n")
                if end >= 0:
                    size, parse = end + 2, parse_proxy_v1
                elif len(data) >= PROXY_V1_MAX:
                    raise BadRequest("PROXY v1 line too long")
            elif data[:12] == PROXY_V2_SIGNATURE and mode in ("v2", "auto"):
                if len(data) >= 16:
                    size, parse = 16 + int.from_bytes(data[14:16], "big"), parse_proxy_v2
                    if size > PROXY_MAX:
                        raise BadRequest("PROXY v2 header too long")
            elif len(data) >= 12 or not (PROXY_V2_SIGNATURE.startswith(data)
                                        or b"PROXY ".startswith(data[:6])):
                if mode != "auto":
                    raise BadRequest("PROXY protocol header expected")
                if self.buffer and self.worker.ssl_context is not None:
                    raise BadRequest("neither a PROXY header nor TLS")
                self.proxy_pending = False
                return True
            take = len(peeked) if size is None else min(len(peeked), size - len(self.buffer))
            self.buffer += self.sock.recv(take)
            if size is not None and len(self.buffer) >= size:
                if not is_allowed(self.peer, self.worker.cfg.proxy_allow_ips):
                    raise Forbidden("PROXY header from an address not in proxy_allow_ips")
                self.peer = parse(self.buffer) or self.peer
                self.buffer = b""
                self.proxy_pending = False
                return True

    def start_tls(self):
        """Wrap the socket and run the TLS handshake without blocking: True
        when done, False while it waits for the client (under the head
        deadline, so a silent TLS client can not pin anything)."""
        if not isinstance(self.sock, ssl.SSLSocket):
            cfg = self.worker.cfg
            self.sock = self.worker.ssl_context.wrap_socket(
                self.sock, server_side=True, do_handshake_on_connect=False,
                suppress_ragged_eofs=cfg.suppress_ragged_eofs)
        while True:
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                return False
            except ssl.SSLWantWriteError:
                self.wait_briefly(select.POLLOUT)
                continue
            except (OSError, ValueError) as exc:
                self.worker.log.debug("TLS handshake with %s failed: %s", self.peer_text, exc)
                raise ClientGone() from None
            self.tls_pending = False
            return True

    def check_head_size(self, buffer):
        """A partial head (``buffer``, no blank line in it yet) must not
        outgrow the limits before it is whole: the request line (the line
        so far, less the CRLF that may end it), the worker's max_head, and
        --limit-request-head (less the blank line that may end it; what
        follows a head, a pipelined request, is never checked here)."""
        cfg = self.worker.cfg
        line_end = buffer.find(b"\n")
        check_request_line_length(line_end - 1 if line_end >= 0 else len(buffer) - 2, cfg)
        if len(buffer) > self.worker.max_head:
            raise HeadersTooLarge("request head larger than %d bytes" % self.worker.max_head)
        check_head_length(len(buffer) - 4, cfg)

    def movable(self):
        """May another worker take this connection over? Only between
        requests, with nothing of the next one taken from the socket yet,
        and not once TLS has begun (its state lives in this process)."""
        return self.stage is HEAD and not self.buffer and \
            (not self.tls or (self.tls_pending and type(self.sock) is socket.socket))

    def peer_ip(self):
        """The client's IP address as gunicorn's log lines give it ('' for a
        unix socket)."""
        return self.peer[0] if isinstance(self.peer, tuple) else ""

    def has_pending(self):
        """Bytes already received but not yet parsed (in our buffer, or
        decrypted inside the TLS layer, where select() can not see them)."""
        return bool(self.buffer) or (self.tls and self.sock.pending() > 0)

    def write(self, data):
        """Send ``data`` now, or keep what the client does not take at once
        for the loop to send. Waits for the client only when the response
        held for it is over --send-spool-size. Raises ClientGone."""
        out = self.out
        if out is None or not out.segments:
            try:
                sent = self.sock.send(data)
            except OSError as exc:
                blocked_on(exc)     # (the rest waits in the OutputBuffer)
                sent = 0
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
            if out is None:
                out = self.out = OutputBuffer(self.worker.cfg, self.worker.complaints)
        out.append(data)
        if out.buffered > self.worker.cfg.send_spool_size:
            self.wait_for_room()

    def write_file(self, fd, offset, count):
        """Send ``count`` bytes of a regular file from ``offset`` with
        sendfile(), now or, for what the client does not take at once, from
        the loop (on a duplicate of the descriptor: the app may close its
        file as soon as it is done)."""
        out = self.out
        if out is None or not out.segments:
            while count > 0:
                try:
                    sent = os.sendfile(self.fd, fd, offset, min(count, SENDFILE_MOST))
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                        raise ClientGone() from None
                    raise
                if sent == 0:
                    raise ClientGone()      # the file is shorter than it was
                offset += sent
                count -= sent
            if count <= 0:
                return
            if out is None:
                out = self.out = OutputBuffer(self.worker.cfg, self.worker.complaints)
        out.append_file(os.dup(fd), offset, count)

    def wait_for_room(self):
        """In an app slot: the response held for this client is over
        --send-spool-size, so the app waits until the client has taken
        enough, at --send-min-rate at least. The wait is not time in the
        app for --timeout."""
        worker, out = self.worker, self.out
        cfg = worker.cfg
        started = last = time.monotonic()
        sent_before = out.sent
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        while out.buffered > cfg.send_spool_size:
            left = io_deadline(started, cfg.send_timeout, out.sent - sent_before,
                               cfg.send_min_rate) - last
            if left <= 0:
                worker.log.info("Closing the connection of %s: it took its response too "
                                "slowly", self.peer_text)
                raise ClientGone()
            poller.poll(min(left, worker.beat_interval) * 1000)
            out.send(self.sock, self.tls)
            now = time.monotonic()
            worker.app_waited_for_client(self.response, now - last)
            last = now

    def wait_briefly(self, events):
        """The rare blocking moment of the loop: a TLS handshake or read
        that must write first. At most a second."""
        poller = select.poll()
        poller.register(self.fd, events)
        if not poller.poll(1000):
            raise ClientGone()

    def send_error_quietly(self, status):
        """Best effort: an error page for a client that may already be gone."""
        try:
            self.sock.send(error_page(status))
        except OSError:
            pass

    def close(self):
        self.closed = True
        if self.body is not None:
            self.body.close()
        if self.out is not None:
            self.out.close()
        self.sock.close()


def open_channel():
    """A pair of connected datagram sockets between the master and a worker,
    made before the fork: the master keeps [0], the worker [1]. Non-blocking,
    so neither ever waits on the other; not inherited (PEP 446) by what
    either process execs."""
    pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for end in pair:
        end.setblocking(False)
    return pair


def send_connection(channel, message, fd):
    """Hand a connection's descriptor and a short description of it over a
    channel (one datagram). Raises OSError (BlockingIOError when full)."""
    channel.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])


def receive_connection(channel):
    """(description, [descriptors]) of one handed-over connection, or
    (None, []) for an empty datagram. Raises BlockingIOError when none waits."""
    message, ancillary, _, _ = channel.recvmsg(HANDOFF_MESSAGE_MAX, socket.CMSG_SPACE(16))
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(struct.unpack("%di" % (usable // 4), data[:usable]))
    if not message and not fds:
        return None, []
    return message, fds


def open_temporary_file(directory):
    """An unlinked temporary file's descriptor, in ``directory`` (default
    $TMPDIR or /tmp). Not the tempfile module: it imports random, shutil
    and more, which every worker would then carry."""
    directory = directory or os.environ.get("TMPDIR") or "/tmp"
    if hasattr(os, "O_TMPFILE"):
        try:
            return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    for attempt in range(100):
        path = os.path.join(directory, ".arbiter-%d-%d-%d" % (
            os.getpid(), _thread.get_ident(), attempt))
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            continue
        os.unlink(path)
        return fd
    raise OSError(errno.EEXIST, "can not create a temporary file in %s" % directory)



class BodyMemory:
    """Where one worker keeps request bodies in memory: at most
    --body-memory-limit bytes over all its connections. A large body gets
    an mmap of --body-buffer-size, and one such buffer per app slot is kept
    for the next bodies: pages that the socket fills again are already
    there (faulting fresh pages in cost more than receiving the bytes),
    and the worker never holds more than those few buffers."""

    __slots__ = ("left", "buffer_size", "keep", "free")

    def __init__(self, limit, buffer_size, keep):
        self.left = limit
        self.buffer_size = buffer_size
        self.keep = keep
        self.free = []

    def take(self, size):
        if size > self.left:
            return False
        self.left -= size
        return True

    def give(self, size):
        self.left += size

    def buffer(self, size):
        """A buffer for a body of ``size`` bytes (taken already)."""
        if size < MMAP_BODY_SIZE or size > self.buffer_size:
            return bytearray(size)
        if self.free:
            return self.free.pop()
        return mmap.mmap(-1, self.buffer_size, flags=mmap.MAP_PRIVATE)

    def recycle(self, buffer):
        if type(buffer) is mmap.mmap:
            if len(self.free) < self.keep:
                self.free.append(buffer)
            else:
                buffer.close()


class IncomingBody:
    """A request body as it arrives in the loop: de-chunked, counted against
    --limit-request-body (413 beyond), kept in memory up to
    --body-buffer-size (and while the worker's --body-memory-limit allows)
    and otherwise in an unlinked temporary file. Once it is complete,
    ``wsgi_input()`` is the app's wsgi.input.

    A body of known size that is kept in memory gets one buffer (see
    BodyMemory), which the socket fills directly (``view``): no copy, and
    no growth."""

    __slots__ = ("left", "decoder", "memory", "view", "filled", "file", "received", "limit",
                 "memory_limit", "directory", "budget", "reserved")

    def __init__(self, request, cfg, memory):
        self.left = request.content_length      # None when chunked
        self.decoder = ChunkedDecoder(cfg) if request.chunked else None
        self.memory = io.BytesIO()
        self.view = None
        self.filled = 0
        self.file = None
        self.received = 0               # body bytes, decoded
        self.limit = cfg.limit_request_body
        self.memory_limit = cfg.body_buffer_size
        self.directory = cfg.tmp_upload_dir
        self.budget = memory             # the worker's BodyMemory
        self.reserved = 0               # bytes of it this body holds
        length = request.content_length
        if length is not None:
            if length <= self.memory_limit and memory.take(length):
                self.reserved = length
                self.memory = memory.buffer(length)
                self.view = memoryview(self.memory)[:length]
            else:
                self.spill()

    def feed(self, data):
        """Take bytes that arrived: the bytes after the body once it is
        complete (maybe b""), None while it goes on. Raises HTTPError."""
        if self.decoder is None:
            left = self.left
            if len(data) < left:
                self.store(data)
                self.left = left - len(data)
                return None
            self.store(data[:left])
            self.left = 0
            return bytes(data[left:])
        pieces, rest = self.decoder.feed(bytes(data))
        for piece in pieces:
            self.store(piece)
        return rest

    def filled_directly(self, size):
        """``size`` bytes arrived straight into ``view``: True once it is full."""
        self.filled += size
        self.received += size
        self.left -= size
        return not self.left

    def store(self, data):
        size = len(data)
        self.received += size
        if self.limit and self.received > self.limit:
            raise ContentTooLarge("body over --limit-request-body %d" % self.limit)
        if self.view is not None:
            self.view[self.filled:self.filled + size] = data
            self.filled += size
            return
        if self.file is None:
            if self.received <= self.memory_limit and self.budget.take(size):
                self.reserved += size
                self.memory.write(data)
                return
            self.spill()
        try:
            self.file.write(data)
        except OSError as exc:
            raise self.no_room(exc) from None

    def spill(self):
        """From now on the body goes to a temporary file (503 if there is
        none to be had)."""
        try:
            self.file = open(open_temporary_file(self.directory), "w+b")
            if self.memory is not None and self.view is None:
                self.file.write(self.memory.getbuffer())
        except OSError as exc:
            raise self.no_room(exc) from None
        self.memory = None
        self.budget.give(self.reserved)
        self.reserved = 0

    def no_room(self, exc):
        return NoRoomForBody("no room for a request body in %s: %s" % (
            self.directory or os.environ.get("TMPDIR") or "/tmp", exc.strerror or exc))

    def wsgi_input(self):
        if self.view is not None:
            return MemoryInput(self.view)
        stream = self.memory if self.file is None else self.file
        try:
            stream.seek(0)      # (a file's buffer is written out here)
        except OSError as exc:
            raise self.no_room(exc) from None
        return stream

    def trailers(self):
        return self.decoder.trailers if self.decoder is not None else []

    def close(self):
        """After the request (or when the connection ends): the memory back
        to the worker's budget, the temporary file closed."""
        if self.view is not None:
            self.view.release()
            self.view = None
        if self.memory is not None and type(self.memory) is not io.BytesIO:
            self.budget.recycle(self.memory)
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass    # what it could not write out (a full disk) is not wanted now
        self.memory = None
        self.budget.give(self.reserved)
        self.reserved = 0


class MemoryInput:
    """``wsgi.input`` over a body that arrived into one buffer (a bytearray
    or an mmap): read, readline, readlines, iteration."""

    __slots__ = ("view", "pos")

    def __init__(self, view):
        self.view = view
        self.pos = 0

    def read(self, size=-1):
        start = self.pos
        end = len(self.view) if size is None or size < 0 else min(len(self.view), start + size)
        self.pos = end
        return self.view[start:end].tobytes()

    def readline(self, size=-1):
        start, end = self.pos, len(self.view)
        if size is not None and size >= 0:
            end = min(end, start + size)
        newline = self.view.obj.find(b"\n", start, end)
        return self.read((newline + 1 if newline >= 0 else end) - start)

    def readlines(self, hint=-1):
        lines, total = [], 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass


class OutputBuffer:
    """What a client has not taken yet, in order: bytes in memory (up to
    --send-buffer-size), then in an unlinked temporary file; and regions of
    the app's regular files, sent with sendfile(). The loop drains it at the
    client's pace; ``buffered`` (memory and file) is what the app's
    --send-spool-size counts."""

    __slots__ = ("segments", "memory", "buffered", "sent", "spool", "spool_end",
                 "memory_limit", "directory", "complaints")

    def __init__(self, cfg, complaints):
        self.segments = collections.deque()     # bytes-like, or [fd, offset, end, owned]
        self.memory = 0             # bytes held in memory
        self.buffered = 0           # bytes held in memory or in the spool file
        self.sent = 0               # bytes sent from here so far
        self.spool = None           # the temporary file's descriptor
        self.spool_end = 0          # where the next spooled bytes go in it
        self.memory_limit = cfg.send_buffer_size
        self.directory = cfg.tmp_upload_dir
        self.complaints = complaints    # the worker's: a spool that fails is logged there

    def append(self, data):
        size = len(data)
        self.buffered += size
        if self.memory + size <= self.memory_limit:
            self.segments.append(data)
            self.memory += size
            return
        offset = self.spool_end
        view = memoryview(data)
        failure = None
        try:
            if self.spool is None:
                self.spool = open_temporary_file(self.directory)
            while view:
                view = view[os.pwrite(self.spool, view, self.spool_end):]
                self.spool_end = offset + size - len(view)
        except OSError as exc:
            failure = exc
        written = size - len(view)
        last = self.segments[-1] if self.segments else None
        if written and type(last) is list and last[0] == self.spool and last[2] == offset:
            last[2] += written
        elif written:
            self.segments.append([self.spool, offset, offset + written, False])
        if failure is not None:
            self.spool_failed(failure, view)

    def spool_failed(self, exc, rest):
        """No temporary file for this response (ENOSPC, EACCES, EMFILE...):
        what is not spooled stays in memory, from now on all of it. The app
        still waits for the client beyond --send-spool-size, so that bounds
        the memory it costs."""
        self.memory_limit = NEVER
        self.segments.append(rest)
        self.memory += len(rest)
        self.complaints.note(logging.ERROR, "Could not spool %%d response(s) for slow clients "
                             "to %s: %s; keeping them in memory (up to --send-spool-size "
                             "each)" % (self.directory or os.environ.get("TMPDIR") or "/tmp",
                                        exc.strerror or exc))

    def append_file(self, fd, offset, count):
        self.segments.append([fd, offset, offset + count, True])

    def send(self, sock, tls):
        """Send what the socket takes now: True once all is out. Raises
        ClientGone."""
        segments = self.segments
        try:
            while segments:
                first = segments[0]
                if type(first) is list:
                    self.send_region(sock, tls, first)
                    segments.popleft()
                    if first[3]:
                        os.close(first[0])
                    continue
                if tls or len(segments) == 1:
                    sent = sock.send(first)
                else:
                    batch = []
                    for segment in segments:
                        if type(segment) is list or len(batch) == 64:
                            break
                        batch.append(segment)
                    sent = sock.sendmsg(batch)
                if not self.consume(sent):
                    return False
        except OSError as exc:
            blocked_on(exc)     # (the loop calls again when the socket is writable)
            return False
        if self.spool is not None and self.spool_end:
            # The spool is used again from its start, but sendfile() left
            # the socket references to its pages, not copies: writing over
            # them would change bytes not yet sent (or not yet acknowledged).
            # Truncating detaches those pages; new writes get new ones.
            try:
                os.ftruncate(self.spool, 0)
                self.spool_end = 0
            except OSError:
                pass        # then it grows on past its end instead
        return True

    def consume(self, sent):
        """Drop ``sent`` bytes from the front; True if they were whole segments."""
        self.sent += sent
        segments = self.segments
        while sent:
            first = segments[0]
            size = len(first)
            if sent < size:
                segments[0] = memoryview(first)[sent:]
                self.memory -= sent
                self.buffered -= sent
                return False
            segments.popleft()
            self.memory -= size
            self.buffered -= size
            sent -= size
        return True

    def send_region(self, sock, tls, region):
        """A file region, until it is out (a full socket raises)."""
        fd, offset, end, owned = region
        while offset < end:
            if tls:
                data = os.pread(fd, min(end - offset, READ_SIZE), offset)
                sent = sock.send(data) if data else 0
            else:
                sent = os.sendfile(sock.fileno(), fd, offset, min(end - offset, SENDFILE_MOST))
            if sent == 0:
                raise ClientGone()      # the file is shorter than it was
            offset += sent
            region[1] = offset
            self.sent += sent
            if not owned:
                self.buffered -= sent

    def close(self):
        for segment in self.segments:
            if type(segment) is list and segment[3]:
                os.close(segment[0])
        self.segments.clear()
        if self.spool is not None:
            os.close(self.spool)
            self.spool = None


# ---------------------------------------------------------------------------
# HTTP/1.1 parsing: request line, header fields, the chunked coding, wsgi.input
# ---------------------------------------------------------------------------

# The grammar of a request, every rule built from the character classes of
# RFC 9110 and 9112. The head is parsed as latin-1 text (the *_STR rules);
# bodies and trailers are bytes.
# RFC 9110 §5.6.2: tchar, the characters of a token (methods, field names).
TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# RFC 9110 §5.5: a field value's characters: VCHAR, obs-text, SP and HTAB.
FIELD_CHAR = r"\t\x20-\x7e\x80-\xff"
TOKEN_STR = re.compile("[%s]+" % TCHAR)
FIELD_VALUE_STR = re.compile("[%s]*" % FIELD_CHAR)
TOKEN = re.compile(TOKEN_STR.pattern.encode("ascii"))
FIELD_VALUE = re.compile(FIELD_VALUE_STR.pattern.encode("ascii"))
# gunicorn's rule for methods: upper-case tchar, 3 to 20 of them (a
# lower-case or very long "method" is far more often an attack or a typo
# than a verb).
CONVENTIONAL_METHOD = "[%s]{3,20}" % TCHAR.replace("a-z", "")
CONVENTIONAL_METHOD_STR = re.compile(CONVENTIONAL_METHOD)
# RFC 9112 §3.2, RFC 3986 §2: the target is printable ASCII, no whitespace.
TARGET_STR = re.compile(r"[\x21-\x7e]+")
HTTP_VERSION_STR = re.compile(r"HTTP/([0-9])\.([0-9])")
# The fast path: the request line and field lines of nearly every request,
# matched whole; anything else goes through the rules one by one.
COMMON_REQUEST_LINE = re.compile(r"(%s) (/[\x21-\x7e]*) HTTP/1\.([0-9])" % CONVENTIONAL_METHOD)
FIELD_LINE = "[%s]+:[%s]*" % (TCHAR, FIELD_CHAR)
FIELD_LINES = re.compile("%s(?:\r\n%s)*" % (FIELD_LINE, FIELD_LINE))
ABSOLUTE_TARGET = re.compile(r"(?i)(https?)://([^/?#]*)([^#]*)(?:#.*)?")
# RFC 3986 §3.2.2/3.2.3: what a Host (or absolute-form authority) may hold.
HOST_VALUE = re.compile(
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")
DIGITS = re.compile(r"[0-9]+")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
# RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ),
# a value being a token or a quoted-string (RFC 9110 §5.6.4).
QUOTED_STRING = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[%s])*"' % FIELD_CHAR
CHUNK_EXT = re.compile((r"(?:[ \t]*;[ \t]*[%s]+(?:[ \t]*=[ \t]*(?:[%s]+|%s))?)*"
                        % (TCHAR, TCHAR, QUOTED_STRING)).encode("ascii"))

# The limits of a request that are not settings.
DEFAULT_FIELD_SIZE = 8190       # --limit-request-field_size 0 means this
# A Content-Length with more digits than this (an exabyte) is refused: it
# can not be real, and int() of thousands of digits is an error (or slow).
MAX_CONTENT_LENGTH_DIGITS = 18
MAX_CHUNK_LINE = 4096
MAX_TRAILER_FIELDS = 100
# RFC 9110 §6.5.1: fields that framing, routing or authentication depend on
# must not arrive in a trailer section.
FORBIDDEN_TRAILERS = frozenset((
    b"CONTENT-LENGTH", b"TRANSFER-ENCODING", b"HOST", b"TE", b"TRAILER",
    b"CONNECTION", b"KEEP-ALIVE", b"UPGRADE", b"EXPECT", b"MAX-FORWARDS",
    b"AUTHORIZATION", b"PROXY-AUTHORIZATION"))
# Fields that may appear only once in a request (RFC 9110 §5.3).
SINGLETON_FIELDS = frozenset(("CONTENT-TYPE",))


class Request:
    """A parsed request head: a plain record, filled by parse_head()."""

    __slots__ = ("method", "uri", "path", "query", "version", "headers",
                 "host", "content_length", "chunked", "expect_continue", "keep_alive",
                 "scheme", "body", "trailers", "forwarded", "peer_addr")

    def __init__(self, method, uri, version):
        self.method = method
        self.uri = uri
        self.path = ""
        self.query = ""
        self.version = version
        self.headers = []
        self.host = None
        self.content_length = None
        self.chunked = False
        self.expect_continue = False
        self.keep_alive = version >= (1, 1)
        self.scheme = None
        self.body = EMPTY_INPUT         # wsgi.input; read_request sets the real one
        self.trailers = []              # of a chunked body, once it has arrived
        self.forwarded = []     # forwarder_headers fields, used if the peer is trusted
        self.peer_addr = None   # the client's address; read_request sets it

    @property
    def remote_addr(self):
        """gunicorn's name for the same address as ``peer_addr``."""
        return self.peer_addr

    def should_close(self):
        """gunicorn's hook API: will the connection close after this request?"""
        return not self.keep_alive

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.uri)


def parse_head(head, cfg):
    """Parse a request head (bytes up to, not including, the blank line).

    Pure: no I/O. Returns a Request or raises an HTTPError subclass whose
    status is the answer (RFC 9110/9112; the rules are listed in README).
    """
    line, _, fields = head.decode("latin-1").partition("\r\n")
    check_request_line_length(len(line), cfg)
    check_head_length(len(head), cfg)
    match = COMMON_REQUEST_LINE.fullmatch(line)
    if match is not None and not cfg.casefold_http_method:
        # The common case in one regex: a conventional method, an
        # origin-form target and HTTP/1.x.
        method, target, minor = match.groups()
        if method == "CONNECT":
            raise Unsupported("CONNECT is not supported")
        request = Request(method, target, (1, 0) if minor == "0" else (1, 1))
        request.path, _, request.query = target.partition("?")
        if "#" in target:
            parse_target(request, target)
    else:
        request = parse_request_line(line, cfg)
    if fields:
        parse_fields(request, fields, cfg)
    check_fields(request, cfg)
    return request


def check_request_line_length(length, cfg):
    """--limit-request-line (0: none): a request line of ``length`` bytes,
    its CRLF not counted, is a 414 beyond it. Checked as the head arrives
    (Connection.check_head_size) and once it is whole (parse_head)."""
    if cfg.limit_request_line and length > cfg.limit_request_line:
        raise URITooLong("request line longer than %d bytes" % cfg.limit_request_line)


def check_head_length(length, cfg):
    """--limit-request-head (0: none): a head of ``length`` bytes, its blank
    line not counted, is a 431 beyond it. The per-line and per-field
    limits alone allow ~800 KB per connection."""
    if cfg.limit_request_head and length > cfg.limit_request_head:
        raise HeadersTooLarge("request head larger than %d bytes (--limit-request-head)"
                              % cfg.limit_request_head)


def parse_request_line(line, cfg):
    """The request line, checked rule by rule (the careful path)."""
    parts = line.split(" ")
    if len(parts) != 3:
        raise BadRequest("malformed request line")
    method, target, version_text = parts
    match = HTTP_VERSION_STR.fullmatch(version_text)
    if match is None:
        if version_text.startswith("HTTP/"):
            raise VersionNotSupported("unsupported HTTP version %r" % version_text[:16])
        raise BadRequest("malformed HTTP version")
    if match.group(1) != "1":
        raise VersionNotSupported("unsupported HTTP version %s" % version_text)
    # RFC 9110 §2.5: a higher minor version is answered as the highest we have.
    version = (1, 1) if match.group(2) != "0" else (1, 0)
    if cfg.casefold_http_method:
        method = method.upper()
    if not TOKEN_STR.fullmatch(method):
        raise BadRequest("method is not a token")
    if not cfg.permit_unconventional_http_method and not CONVENTIONAL_METHOD_STR.fullmatch(method):
        raise BadRequest("unconventional method %r" % method[:20])
    if not TARGET_STR.fullmatch(target):
        raise BadRequest("malformed request target")
    request = Request(method, target, version)
    parse_target(request, target)
    return request


def parse_target(request, target):
    """RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT
    only) and asterisk-form (OPTIONS only)."""
    if request.method == "CONNECT":
        raise Unsupported("CONNECT is not supported")
    if target[0] == "/":
        # A fragment (RFC 3986 §3.5) is the client's business: it is dropped.
        request.path, _, request.query = target.partition("#")[0].partition("?")
        return
    if target == "*":
        if request.method != "OPTIONS":
            raise BadRequest("asterisk-form is only for OPTIONS")
        return  # PATH_INFO stays empty; RAW_URI is "*"
    match = ABSOLUTE_TARGET.fullmatch(target)
    if match is None:
        raise BadRequest("malformed request target")
    scheme, authority, rest = match.groups()
    if "@" in authority or not authority or not HOST_VALUE.fullmatch(authority):
        raise BadRequest("malformed authority in the request target")
    path, _, query = rest.partition("?")
    request.scheme = scheme.lower()
    request.host = authority
    request.path, request.query = path or "/", query


def parse_fields(request, fields, cfg):
    """Header field lines -> request.headers as (UPPER-NAME, value) pairs."""
    # gunicorn's rule: the limit counts the line with its CRLF; 0 is the default.
    limit_size = (cfg.limit_request_field_size or DEFAULT_FIELD_SIZE) - 2
    lines = fields.split("\r\n")
    if FIELD_LINES.fullmatch(fields) and (len(fields) <= limit_size or
                                         max(map(len, lines)) <= limit_size):
        # The common case, checked by one regex: well-formed lines, no folding.
        request.headers = headers = [(name.upper(), value.strip(" \t")) for name, _, value
                                     in [line.partition(":") for line in lines]]
    else:
        headers = request.headers = parse_fields_one_by_one(lines, limit_size, cfg)
    if cfg.limit_request_fields and len(headers) > cfg.limit_request_fields:
        raise HeadersTooLarge("more than %d header fields" % cfg.limit_request_fields)


def parse_fields_one_by_one(lines, limit_size, cfg):
    """The careful path: says what is wrong, handles obs-fold and spaces."""
    headers = []
    for line in lines:
        if len(line) > limit_size:
            raise HeadersTooLarge("header field longer than %d bytes" % limit_size)
        if line[:1] in (" ", "\t"):
            # RFC 9112 §5.2: obs-fold is rejected, or replaced by one SP.
            if not cfg.permit_obsolete_folding or not headers:
                raise BadRequest("obsolete line folding in a header field")
            value = line.strip(" \t")
            if not FIELD_VALUE_STR.fullmatch(value):
                raise BadRequest("invalid character in a header value")
            name, previous = headers[-1]
            headers[-1] = (name, " ".join(filter(None, (previous, value))))
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest("header field without a colon")
        if cfg.strip_header_spaces:
            name = name.rstrip(" \t")
        if not TOKEN_STR.fullmatch(name):
            raise BadRequest("invalid header field name %r" % name[:40])
        value = value.strip(" \t")
        if not FIELD_VALUE_STR.fullmatch(value):
            raise BadRequest("invalid character in the value of %s" % name[:40])
        headers.append((name.upper(), value))
    return headers


def check_fields(request, cfg):
    """The fields that mean something to the server, checked and noted on
    ``request`` (RFC 9112 §6 and §9): the framing (Content-Length,
    Transfer-Encoding), Host, Connection, Expect. Fields named with an
    underscore are set aside for --forwarder-headers, or dropped or
    refused as --header-map says."""
    content_lengths = set()
    codings = None
    hosts = 0
    connection = ""
    kept = []
    for name, value in request.headers:
        if "_" in name:
            if name in cfg.forwarder_headers:
                request.forwarded.append((name, value))
                continue
            if cfg.header_map == "drop":
                continue
            if cfg.header_map == "refuse":
                raise BadRequest("header name with an underscore: %s" % name[:40])
        if name == "CONTENT-LENGTH":
            if not DIGITS.fullmatch(value):
                raise BadRequest("Content-Length is not a number")
            if len(value) > MAX_CONTENT_LENGTH_DIGITS:
                raise BadRequest("Content-Length too large")
            content_lengths.add(int(value))
        elif name == "TRANSFER-ENCODING":
            codings = (codings or []) + [c.strip(" \t").lower() for c in value.split(",")]
        elif name == "HOST":
            hosts += 1
            if not HOST_VALUE.fullmatch(value):
                raise BadRequest("malformed Host header")
            if request.host is None:
                request.host = value
        elif name == "CONNECTION":
            connection += "," + value.lower()
        elif name in SINGLETON_FIELDS and any(n == name for n, _ in kept):
            raise BadRequest("more than one %s header" % name.title())
        elif name == "EXPECT":
            if value.lower() == "100-continue" and request.version >= (1, 1):
                request.expect_continue = True
        kept.append((name, value))
    request.headers = kept
    if hosts > 1:
        raise BadRequest("more than one Host header")
    if hosts == 0 and request.version >= (1, 1):
        raise BadRequest("HTTP/1.1 request without Host")
    if len(content_lengths) > 1:
        raise BadRequest("conflicting Content-Length headers")
    if codings is not None:
        if request.version < (1, 1):
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        if content_lengths:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        codings = [c for c in codings if c]
        if not codings or codings[-1] != "chunked" or "chunked" in codings[:-1]:
            raise BadRequest("chunked is not the final transfer coding")
        if len(codings) > 1:
            raise Unsupported("transfer coding %r is not supported" % codings[0][:20])
        request.chunked = True
    elif content_lengths:
        request.content_length = content_lengths.pop()
    if connection:
        tokens = {t.strip(" \t") for t in connection.split(",")}
        if "close" in tokens:
            request.keep_alive = False
        elif "keep-alive" in tokens and request.version == (1, 0):
            request.keep_alive = True


PROXY_V1_MAX = 107     # the longest v1 line, CRLF included
PROXY_MAX = 4096       # the most we accept of a v2 header (with its TLVs)
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy_v1(line):
    """``PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n`` -> (src, sport), or None
    for ``PROXY UNKNOWN`` (keep the real peer)."""
    parts = line[:-2].decode("latin-1").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadRequest("malformed PROXY v1 line")
    _, family, source, destination, source_port, destination_port = parts
    import ipaddress
    version = 4 if family == "TCP4" else 6
    for address in (source, destination):
        try:
            if ipaddress.ip_address(address).version != version:
                raise ValueError
        except ValueError:
            raise BadRequest("bad address in the PROXY v1 line") from None
    for port in (source_port, destination_port):
        if not DIGITS.fullmatch(port) or int(port) > 65535 or port != str(int(port)):
            raise BadRequest("bad port in the PROXY v1 line")
    return source, int(source_port)


def parse_proxy_v2(header):
    """A binary v2 header -> (src, sport), or None for LOCAL or a family
    without an IP address (keep the real peer)."""
    version_command, family = header[12], header[13]
    if version_command >> 4 != 2 or version_command & 0xF > 1:
        raise BadRequest("bad PROXY v2 version or command")
    if version_command & 0xF == 0:
        return None  # LOCAL: a health check from the proxy itself
    import ipaddress
    body = header[16:]
    if family >> 4 == 1 and len(body) >= 12:
        return str(ipaddress.IPv4Address(body[0:4])), int.from_bytes(body[8:10], "big")
    if family >> 4 == 2 and len(body) >= 36:
        return str(ipaddress.IPv6Address(body[0:16])), int.from_bytes(body[32:34], "big")
    if family >> 4 in (1, 2):
        raise BadRequest("PROXY v2 address block too short")
    return None


class ChunkedDecoder:
    """The chunked transfer coding (RFC 9112 §7.1), decoded as bytes arrive:
    ``feed()`` takes whatever came and returns the data it carried. No I/O,
    so it is tested and fuzzed directly. Size and trailer lines are bounded
    even before they are complete; trailer fields are checked and kept in
    ``trailers`` (not merged into the environ)."""

    __slots__ = ("cfg", "state", "chunk_left", "line", "trailers", "done")

    SIZE, DATA, DATA_END, TRAILER = range(4)

    def __init__(self, cfg):
        self.cfg = cfg
        self.state = self.SIZE
        self.chunk_left = 0
        self.line = b""         # the start of a line that has not ended yet
        self.trailers = []      # (NAME, value) pairs
        self.done = False

    def feed(self, data):
        """-> (data pieces, the bytes after the body or None while it goes
        on). Raises HTTPError."""
        pieces = []
        pos, end = 0, len(data)
        while pos < end:
            if self.state == self.DATA:
                take = min(self.chunk_left, end - pos)
                pieces.append(data[pos:pos + take])
                pos += take
                self.chunk_left -= take
                if not self.chunk_left:
                    self.state = self.DATA_END
                continue
            limit = MAX_CHUNK_LINE if self.state != self.TRAILER else \
                (self.cfg.limit_request_field_size or MAX_CHUNK_LINE)
            newline = data.find(b"\n", pos)
            if newline < 0:
                self.line += data[pos:]
                if len(self.line) > limit + 1:      # room for a CR still to come
                    raise BadRequest("line longer than %d bytes in a chunked body" % limit)
                break
            line = self.line + data[pos:newline + 1]
            self.line = b""
            pos = newline + 1
            if line[-2:] != b"\r\n" or b"\r" in line[:-2]:
                raise BadRequest("bare CR or LF in a chunked body")
            if len(line) - 2 > limit:
                raise BadRequest("line longer than %d bytes in a chunked body" % limit)
            self.take_line(line[:-2])
            if self.done:
                return pieces, data[pos:]
        return pieces, None

    def take_line(self, line):
        if self.state == self.SIZE:
            size, semicolon, _ = line.partition(b";")
            size = size.rstrip(b" \t")
            if not CHUNK_SIZE.fullmatch(size):
                raise BadRequest("invalid chunk size")
            if semicolon and not CHUNK_EXT.fullmatch(line[len(size):]):
                raise BadRequest("invalid chunk extension")
            self.chunk_left = int(size, 16)
            self.state = self.DATA if self.chunk_left else self.TRAILER
        elif self.state == self.DATA_END:
            if line:
                raise BadRequest("chunk data not followed by CRLF")
            self.state = self.SIZE
        elif not line:
            self.done = True
        else:
            if len(self.trailers) >= MAX_TRAILER_FIELDS:
                raise HeadersTooLarge("too many trailer fields")
            name, colon, value = line.partition(b":")
            value = value.strip(b" \t")
            if not colon or not TOKEN.fullmatch(name) or not FIELD_VALUE.fullmatch(value):
                raise BadRequest("invalid trailer field")
            name = name.upper()
            if name in FORBIDDEN_TRAILERS:
                raise BadRequest("%s is not allowed in a trailer" % name.decode("ascii"))
            self.trailers.append((name.decode("latin-1"), value.decode("latin-1")))


class EmptyInput:
    """``wsgi.input`` of a request without a body (shared: it holds nothing)."""

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())

    def close(self):
        pass


EMPTY_INPUT = EmptyInput()


# ---------------------------------------------------------------------------
# WSGI environ and response (PEP 3333)
# ---------------------------------------------------------------------------

# What an app may put in a status line and a field value: no control
# characters but HTAB (a CR or LF would split the response).
RESPONSE_STATUS = re.compile(r"[1-9][0-9][0-9] [^\x00-\x08\x0a-\x1f\x7f]*")
RESPONSE_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
# RFC 9110 §7.6.1 and PEP 3333: hop-by-hop fields belong to the server.
# ``Connection`` is allowed from the app only to ask for a close.
HOP_BY_HOP = frozenset(("keep-alive", "proxy-authenticate",
                        "proxy-authorization", "te", "trailer", "trailers",
                        "transfer-encoding", "upgrade"))
NO_BODY_STATUS = frozenset((204, 304))
REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Content Too Large", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
# RFC 9110 §10.1.1: the interim answer to "Expect: 100-continue".
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ErrorsStream:
    """``wsgi.errors``: text written here goes to the error log as written."""

    def __init__(self, log):
        self.log = log

    def write(self, text):
        self.log.write_unformatted(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass


def base_environ(listener, cfg):
    """The environ keys that are the same for every request on a listener."""
    address = listener.getsockname()
    if isinstance(address, tuple):
        server_name, server_port = str(address[0]), str(address[1])
    else:
        server_name, server_port = "localhost", ""
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if cfg.certfile else "http",
        "wsgi.multithread": cfg.threads > 1,
        "wsgi.multiprocess": cfg.workers > 1,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SCRIPT_NAME": os.environ.get("SCRIPT_NAME", ""),
    }


HEADER_KEYS = {"CONTENT-TYPE": "CONTENT_TYPE", "CONTENT-LENGTH": "CONTENT_LENGTH"}
ENVIRON_KEY_CACHE_SIZE = 1024


def http_environ_key(name):
    """The environ key of a request header field (PEP 3333, after CGI's
    RFC 3875 §4.1.18): ``X-Forwarded-Proto`` -> ``HTTP_X_FORWARDED_PROTO``.
    (Content-Type and Content-Length have keys of their own: HEADER_KEYS.)"""
    return "HTTP_" + name.upper().replace("-", "_")


def build_environ(request, conn, worker):
    """The PEP 3333 environ of one request."""
    environ = worker.base_environ[conn.listener].copy()
    if "wsgi.errors" not in environ:
        environ["wsgi.errors"] = worker.base_environ[conn.listener]["wsgi.errors"] = \
            ErrorsStream(worker.log)
    peer = conn.peer
    path = decoded_path(request)
    script_name = environ["SCRIPT_NAME"]
    if script_name and path.startswith(script_name) and \
            path[len(script_name):len(script_name) + 1] in ("", "/"):
        path = path[len(script_name):]
    environ.update({
        "REQUEST_METHOD": request.method,
        "PATH_INFO": path,
        "QUERY_STRING": request.query,
        "RAW_URI": request.uri,
        "SERVER_PROTOCOL": "HTTP/1.%d" % request.version[1],
        "REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
        "REMOTE_PORT": str(peer[1]) if isinstance(peer, tuple) else "",
        "wsgi.input": request.body,
        # gunicorn 27's: the client socket (non-blocking, and the worker's
        # loop owns what is written to it), and a 103 sender (RFC 8297).
        "gunicorn.socket": conn.sock,
        "wsgi.early_hints": conn.response.early_hints,
    })
    keys = worker.environ_keys
    for name, value in request.headers:
        key = keys.get(name)
        if key is None:
            if len(keys) >= ENVIRON_KEY_CACHE_SIZE:  # new names from clients: bounded
                keys.clear()
                keys.update(HEADER_KEYS)
            key = keys[name] = HEADER_KEYS.get(name) or http_environ_key(name)
        # Content-Length fields that differ were refused by check_fields;
        # equal ones are one length ("11", not "11,11").
        if key in environ and key != "CONTENT_LENGTH":
            environ[key] += "," + value
        else:
            environ[key] = value
    if request.scheme is not None:
        environ["HTTP_HOST"] = request.host
    if conn.trusted:
        apply_proxy_headers(environ, worker.secure_headers)
        if request.forwarded:
            apply_forwarded_fields(environ, request)
    return environ


def decoded_path(request):
    """The request's path, percent-decoded as PATH_INFO has it: the bytes
    as latin-1 text (PEP 3333's "bytes in a str")."""
    path = request.path
    if "%" in path:
        from urllib.parse import unquote_to_bytes
        path = unquote_to_bytes(path).decode("latin-1")
    return path


def is_trusted_proxy(peer, cfg):
    """Is the peer in ``forwarded_allow_ips``?"""
    return is_allowed(peer, cfg.forwarded_allow_ips)


def is_allowed(peer, allowed):
    """Is the peer in a list of addresses or networks ('*': any; a unix
    socket is local)?"""
    if not isinstance(peer, tuple):
        return True
    if "*" in allowed or peer[0] in allowed:
        return True
    networks = getattr(allowed, "networks", ())
    return bool(networks) and in_networks(peer[0], networks)


def in_networks(address, networks):
    """Is an address in one of the networks? An IPv4 client on a dual-stack
    socket (``::ffff:10.1.2.3``) is matched as the IPv4 address it is."""
    import ipaddress
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def apply_forwarded_fields(environ, request):
    """``forwarder_headers`` from a trusted proxy set their environ keys. A
    SCRIPT_NAME (where the proxy mounts the app) also comes off the front
    of PATH_INFO, unless the proxy sent PATH_INFO as well: ``GET /pre/env``
    with ``SCRIPT_NAME: /pre`` is SCRIPT_NAME ``/pre``, PATH_INFO ``/env``.
    A path outside that prefix is a 400 (gunicorn answers 500)."""
    fields = dict(request.forwarded)
    script_name = fields.get("SCRIPT_NAME", "").rstrip("/")
    if script_name and "PATH_INFO" not in fields:
        path = decoded_path(request)
        rest = path[len(script_name):]
        if not path.startswith(script_name) or rest[:1] not in ("", "/"):
            raise BadRequest("the path is not under the SCRIPT_NAME the proxy sent")
        fields["PATH_INFO"] = rest
    if "SCRIPT_NAME" in fields:
        fields["SCRIPT_NAME"] = script_name
    environ.update(fields)


def secure_header_keys(cfg):
    """``secure_scheme_headers`` as (environ key, lower-case secure value)."""
    return [(http_environ_key(name), value.lower())
            for name, value in cfg.secure_scheme_headers.items()]


def apply_proxy_headers(environ, secure_headers):
    """Scheme headers from a trusted proxy set wsgi.url_scheme; headers that
    contradict each other are a 400."""
    scheme = None
    for key, secure_value in secure_headers:
        if key not in environ:
            continue
        this = "https" if environ[key].strip().lower() == secure_value else "http"
        if scheme is not None and scheme != this:
            raise BadRequest("contradictory scheme headers")
        scheme = this
    if scheme is not None:
        environ["wsgi.url_scheme"] = scheme


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file; sent with sendfile() when the
    file is a regular file (see Response.send_file)."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
               "Nov", "Dec")


def http_date(timestamp):
    """RFC 9110 §5.6.7 IMF-fixdate, as bytes (independent of the locale)."""
    t = time.gmtime(timestamp)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        DAY_NAMES[t.tm_wday].encode(), t.tm_mday, MONTH_NAMES[t.tm_mon - 1].encode(),
        t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def error_page(status):
    """The bytes of an error response: status, reason, Connection: close and a
    short plain-text body that never echoes the request."""
    reason = REASONS.get(status, "Error")
    body = ("%s\n" % reason).encode("ascii")
    return (b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % (status, reason.encode("ascii"), len(body))) + body


def as_error_page(response, status):
    """Make ``response`` say, to the access log and the metrics, what
    error_page(status) sends: its status, no app headers, its body's size."""
    reason = REASONS.get(status, "Error")
    response.status = "%d %s" % (status, reason)
    response.status_code = status
    response.headers = []
    response.sent = len(reason) + 1     # the body: the reason and a newline


HEADER_CACHE_SIZE = 4096


def check_response_header(item):
    """A header from start_response: a (str, str) tuple, a token name, a value
    without CR, LF or NUL, latin-1, not hop-by-hop. -> (lower name, line)."""
    if not (type(item) is tuple and len(item) == 2):
        raise ResponseError("a header must be a (name, value) tuple: %r" % (item,))
    name, value = item
    if not isinstance(name, str) or not TOKEN_STR.fullmatch(name):
        raise ResponseError("invalid header name %r" % (name,))
    if not isinstance(value, str) or not RESPONSE_FIELD_VALUE.fullmatch(value):
        raise ResponseError("invalid value for header %s: %r" % (name, value))
    lname = name.lower()
    if lname == "content-length" and not DIGITS.fullmatch(value):
        raise ResponseError("invalid Content-Length %r" % value)
    if lname in HOP_BY_HOP:
        raise ResponseError("hop-by-hop header %s is not allowed (PEP 3333)" % name)
    try:
        line = ("%s: %s\r\n" % (name, value)).encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseError("header %s is not latin-1: %r" % (name, value)) from None
    return lname, line


class ErrorResponse:
    """What the access log needs of an error page that the loop sent for a
    request that never reached the app."""

    def __init__(self, status):
        as_error_page(self, status)


class Response:
    """start_response(), write() and the framing of one response.

    The head is sent together with the first body bytes (one send for a
    small response). Content-Length from the app is kept to the byte; with
    none, a list body gets one, other bodies are chunked (HTTP/1.1) or end
    with the connection (HTTP/1.0). HEAD, 204 and 304 get no body, and 204
    and 304 not the app's Content-Length. A 1xx can not be the final status
    (wsgi.early_hints sends 103s before it).
    """

    version = SERVER_SOFTWARE   # gunicorn's name for the Server header's value

    def __init__(self, conn, request, worker):
        self.conn = conn
        self.request = request
        self.worker = worker
        self.environ = None
        self.status = None
        self.status_code = None
        self.headers = None
        self.head_sent = False
        self.chunked = False
        self.length = None
        self.sent = 0
        self.head_length = 0            # bytes of the head, once it is made
        self.has_body = request.method != "HEAD"
        self.must_close = not request.keep_alive
        self.in_app_since = time.monotonic()    # moved on by waits for the client
        self.duration = 0.0
        self.thread = _thread.get_ident() if worker.threads > 1 else None

    def start_response(self, status, headers, exc_info=None):
        if exc_info:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
            self.has_body = self.request.method != "HEAD"  # (a 204's has none)
        elif self.status is not None:
            raise ResponseError("start_response() called again without exc_info")
        if not isinstance(status, str) or not RESPONSE_STATUS.fullmatch(status) or \
                not status.isascii():
            raise ResponseError("invalid status %r" % (status,))
        if status[0] == "1":
            # RFC 9110 §15.2: a 1xx is interim; sent as final, a client takes
            # the next response for this one's.
            raise ResponseError("%s is not a final status (for 103 Early Hints, "
                                "call environ['wsgi.early_hints'])" % status)
        if not isinstance(headers, list):
            raise ResponseError("headers must be a list, not %s" % type(headers).__name__)
        length = None
        checked = self.worker.checked_header
        for item in headers:
            lname = checked(item)[0]
            if lname == "content-length":
                length = int(item[1])
            elif lname == "connection" and "close" in item[1].lower():
                self.must_close = True
        status_code = int(status[:3])
        if status_code in NO_BODY_STATUS:
            self.has_body = False
            if length is not None:
                # RFC 9110 §8.6: never on a 204; on a 304 only the length a
                # 200 would have had, which the app can get wrong: drop it.
                headers = [item for item in headers if item[0].lower() != "content-length"]
                length = None
        self.status = status
        self.status_code = status_code
        self.headers = headers
        self.length = length
        return self.write

    @property
    def response_length(self):
        """gunicorn's name: the Content-Length of the response, None when it
        has none (chunked, or ended by a close)."""
        return self.length

    def early_hints(self, headers):
        """``wsgi.early_hints``: send a 103 Early Hints with these (name,
        value) headers (RFC 8297), before the final response. A no-op on
        HTTP/1.0 (RFC 9110 §15.2: no 1xx to a 1.0 client) and once the final
        head has left."""
        if self.head_sent or self.request.version < (1, 1):
            return
        checked = self.worker.checked_header
        lines = [b"HTTP/1.1 103 Early Hints\r\n"]
        for name, value in headers:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            lines.append(checked((name, value))[1])
        lines.append(b"\r\n")
        self.conn.write(b"".join(lines))

    def head(self):
        """The status line and header block, framing decided."""
        if self.length is None and self.has_body:
            if self.request.version >= (1, 1):
                self.chunked = True
            else:
                self.must_close = True
        checked = self.worker.checked_header
        lines = [b"HTTP/1.1 ", self.status.encode("latin-1"), b"\r\n"]
        for item in self.headers:
            lname, line = checked(item)
            if lname != "connection":
                lines.append(line)
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if self.must_close or self.worker.draining:
            self.must_close = True
            lines.append(b"Connection: close\r\n")
        elif self.request.version == (1, 0):
            lines.append(b"Connection: keep-alive\r\n")
        lines += (b"Date: ", self.worker.date_header(), b"\r\nServer: ", SERVER_BYTES,
                  b"\r\n\r\n")
        self.head_sent = True
        head = b"".join(lines)
        self.head_length = len(head)
        return head

    def write(self, data):
        """The write() callable of PEP 3333, also used for iterated bodies."""
        if self.status is None:
            raise ResponseError("write() before start_response()")
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ResponseError("body chunks must be bytes, not %s" % type(data).__name__)
            data = bytes(data)
        if not self.has_body:
            if not self.head_sent:
                self.conn.write(self.head())
            return
        if self.length is not None:
            room = self.length - self.sent
            if len(data) > room:
                self.worker.log.warning("%s: the app sent more than its Content-Length (%d); "
                                        "the rest is dropped", self.request.uri, self.length)
                data = data[:room]
                self.must_close = True
        self.sent += len(data)
        head = b"" if self.head_sent else self.head()
        if self.chunked and data:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if head or data:
            self.conn.write(head + data)

    def send_result(self, result):
        """Send the app's iterable: a list in one send, a regular file with
        sendfile(), anything else chunk by chunk."""
        if self.status is None and not isinstance(result, (list, tuple)):
            # PEP 3333: start_response may be called on the first iteration.
            iterator = iter(result)
            for first in iterator:
                if self.status is None:
                    raise ResponseError("the app yielded data before start_response()")
                self.write(first)
                break
            if self.status is None:
                raise ResponseError("the app returned without calling start_response()")
            for data in iterator:
                self.write(data)
            return
        if self.status is None:
            raise ResponseError("the app returned without calling start_response()")
        if type(result) in (list, tuple):
            if len(result) == 1:
                body = result[0]
            else:
                body = b"".join(result) if all(type(x) is bytes for x in result) else None
            if type(body) is bytes:
                # RFC 9110 §8.6: no Content-Length on a 204; a 304's would
                # have to be the GET's, which we do not know.
                if self.length is None and not self.head_sent and \
                        self.status_code not in NO_BODY_STATUS:
                    self.length = len(body)
                    self.headers.append(("Content-Length", str(len(body))))
                self.write(body)
                return
        elif isinstance(result, FileWrapper) and self.worker.cfg.sendfile is not False and \
                self.send_file(result.filelike):
            return
        for data in result:
            self.write(data)

    def send_file(self, file):
        """sendfile() a regular file; False if it is not one (iterate it)."""
        try:
            fd = file.fileno()
            info = os.fstat(fd)
            offset = file.tell()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        if not stat.S_ISREG(info.st_mode) or self.head_sent or self.conn.tls:
            return False
        count = max(0, info.st_size - offset)
        if self.length is None and self.status_code not in NO_BODY_STATUS:
            self.length = count
            self.headers.append(("Content-Length", str(count)))
        elif self.length < count:
            count = self.length
        self.conn.write(self.head())
        if self.has_body and count:
            self.conn.write_file(fd, offset, count)
            self.sent += count
        return True

    def finish(self):
        """Terminate the body; True if the connection can serve another
        request (the framing was kept and nobody asked for a close)."""
        if not self.head_sent:
            if self.length is None and self.has_body:  # nothing was written
                self.length = 0
                self.headers.append(("Content-Length", "0"))
            self.conn.write(self.head())
        elif self.chunked:
            self.conn.write(b"0\r\n\r\n")
        if self.length is not None and self.has_body and self.sent < self.length:
            self.worker.log.warning("%s: the app sent %d of its %d Content-Length bytes; "
                                    "closing the connection", self.request.uri,
                                    self.sent, self.length)
            self.must_close = True
        return not self.must_close

    def become_error(self, status):
        """The app failed before its head left: what goes out (and is
        logged) is the error page of ``status``."""
        as_error_page(self, status)
        self.head_length = len(error_page(status)) - self.sent
        self.head_sent = True
        self.must_close = True


SERVER_BYTES = SERVER_SOFTWARE.encode("ascii")


# ---------------------------------------------------------------------------
# App loading

def demo_app(environ, start_response):
    """The app served when none is named: it says who answered."""
    body = ("Hello from arbiter.py %s: it works. Answered by worker pid %d of master pid %d.\n"
            "Serve your own app with: python arbiter.py module:app\n"
            % (__version__, os.getpid(), os.getppid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


def import_string(path):
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ConfigError("not a dotted path: %r" % path)
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("can not import %r: %s" % (path, exc)) from None


def load_app(uri):
    """``MODULE[:NAME]`` or ``MODULE:FACTORY(literal args)`` -> the WSGI app.
    Any failure is an AppImportError that names what is missing."""
    if uri is None:
        return demo_app
    module_name, _, expression = uri.partition(":")
    expression = expression.strip() or "application"
    if expression.isidentifier():
        name, call, args, kwargs = expression, False, [], {}
    else:
        name, args, kwargs = parse_factory_call(expression)
        call = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppImportError("Failed to import %r: No module named %r"
                                 % (module_name, exc.name), WORKER_BOOT_ERROR) from None
        raise AppImportError("Failed to import %r:\n%s"
                             % (module_name, traceback.format_exc()), WORKER_BOOT_ERROR) \
            from None
    except Exception:
        raise AppImportError("Failed to import %r:\n%s"
                             % (module_name, traceback.format_exc()), WORKER_BOOT_ERROR) \
            from None
    try:
        app = getattr(module, name)
    except AttributeError:
        raise AppImportError("Failed to find attribute %r in %r." % (name, module_name)) \
            from None
    if call:
        try:
            app = app(*args, **kwargs)
        except Exception:
            raise AppImportError("The app factory %s raised:\n%s"
                                 % (expression, traceback.format_exc())) from None
    if app is None:
        raise AppImportError("The app factory %s returned None." % expression)
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


def parse_factory_call(expression):
    """``create_app(1, debug=True)`` -> ('create_app', [1], {'debug': True});
    arguments must be literals. (ast is imported here, not at the top: the
    common ``MODULE:NAME`` does not need it in every worker.)"""
    import ast
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppImportError("Failed to parse %r as an attribute name or function call."
                             % expression) from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise AppImportError("Failed to parse %r as an attribute name or function call."
                             % expression)
    try:
        args = [ast.literal_eval(arg) for arg in tree.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise AppImportError("Failed to parse arguments as literal values: %r"
                             % expression) from None
    return tree.func.id, args, kwargs


def load_app_or_halt(cfg, log):
    try:
        return load_app(cfg.app_uri)
    except AppImportError as exc:
        log.error("%s", exc)
        raise HaltServer("App failed to load.", exc.exit_status) from None


# ---------------------------------------------------------------------------
# Logging and metrics

class AccessAtoms(dict):
    """gunicorn's access-log atoms. Those of the default format are filled
    in; the others are computed only when a format asks for them, from the
    request, environ, response and duration kept under the key ``None``; an
    unknown atom is '-'. (No __init__: building it stays at C speed.)"""

    def __missing__(self, key):
        request, environ, response, seconds = self[None]
        if key == "m":
            return request.method if request else "-"
        if key == "U":
            return environ.get("PATH_INFO", "-")
        if key == "q":
            return environ.get("QUERY_STRING", "")
        if key == "H":
            return "HTTP/1.%d" % request.version[1] if request else "-"
        if key == "B":
            return getattr(response, "sent", 0)
        if key in ("T", "D", "M"):
            return int(seconds * {"T": 1, "D": 1000000, "M": 1000}[key])
        if key == "L":
            return "%.6f" % seconds
        if key == "p":
            return "<%d>" % os.getpid()
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                return environ.get(http_environ_key(name), "-")
            if kind == "o":
                for header, value in response.headers or ():
                    if header.lower() == name.lower():
                        return value
            if kind == "e":
                return os.environ.get(name, "-")
        return "-"


class JSONAccessAtoms(AccessAtoms):
    """For an access-log format that is a JSON object: every value is
    JSON-escaped, so the line stays valid JSON whatever the client sent
    (quotes, backslashes, control characters)."""

    def __getitem__(self, key):
        import json
        return json.dumps(str(super().__getitem__(key)))[1:-1]


class Log:
    """The error log and the access log: loggers named as gunicorn's
    (``gunicorn.error``, ``gunicorn.access``), so logging configs written for
    gunicorn apply; plus syslog and statsd when asked for."""

    ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
    DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"

    def __init__(self, cfg):
        self.error_log = logging.getLogger("gunicorn.error")
        self.access_log = logging.getLogger("gunicorn.access")
        self.access_format = cfg.access_log_format
        self.access_json = False
        self.access_default = False
        self.access_enabled = False
        self.access_stream = None       # our own access handler's stream: written directly
        self.access_pending = False
        self.access_time = (0, "")
        self.statsd = None
        self.cfg = cfg
        self.setup(cfg)

    def setup(self, cfg):
        """(Re)build the handlers from the settings: ours, or a logging
        config (file, JSON file or dict), then syslog, then statsd."""
        self.close()
        self.cfg = cfg
        for logger, target, stream in ((self.error_log, cfg.errorlog, sys.stderr),
                                       (self.access_log, cfg.accesslog, sys.stdout)):
            logger.propagate = False
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
            if target is None:
                continue
            handler = logging.StreamHandler(stream) if target == "-" else \
                logging.FileHandler(target)
            handler.setFormatter(logging.Formatter(
                self.ERROR_FORMAT if logger is self.error_log else "%(message)s",
                self.DATE_FORMAT))
            logger.addHandler(handler)
        self.error_log.setLevel(getattr(logging, cfg.loglevel.upper()))
        self.access_log.setLevel(logging.INFO)
        apply_logging_config(cfg)
        if cfg.syslog:
            self.add_syslog(cfg)
        if cfg.capture_output and cfg.errorlog not in (None, "-"):
            self.capture_output(cfg.errorlog)
        self.access_format = cfg.access_log_format
        # A format that is a JSON object gets its values JSON-escaped.
        self.access_json = cfg.access_log_format.lstrip().startswith("{")
        self.access_default = cfg.access_log_format == DEFAULT_ACCESS_LOG_FORMAT
        self.access_enabled = bool(self.access_log.handlers)
        self.access_stream = self.own_access_stream(cfg)
        self.statsd = Statsd(cfg) if cfg.statsd_host else None

    def own_access_stream(self, cfg):
        """The stream of the access handler we made ourselves, if it is the
        only one: then lines skip the logging machinery (a large share of a
        small request's cost). A logging config or syslog goes through it."""
        handlers = self.access_log.handlers
        if cfg.accesslog is None or len(handlers) != 1 or cfg.logconfig or \
                cfg.logconfig_dict or cfg.logconfig_json:
            return None
        return getattr(handlers[0], "stream", None)

    def add_syslog(self, cfg):
        address = cfg.syslog_addr
        if address.startswith("unix://"):
            target, kind = address[len("unix://"):], socket.SOCK_DGRAM
        else:
            scheme, _, rest = address.partition("://")
            host, _, port = rest.rpartition(":")
            target = (host or "localhost", int(port or 514))
            kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
        import logging.handlers
        handler = logging.handlers.SysLogHandler(target, cfg.syslog_facility, kind)
        prefix = cfg.syslog_prefix or cfg.name
        handler.setFormatter(logging.Formatter(
            "%s[%%(process)d]: [%%(levelname)s] %%(message)s" % prefix.replace("%", "%%")))
        self.error_log.addHandler(handler)
        if not cfg.disable_redirect_access_to_syslog:
            self.access_log.addHandler(handler)

    def capture_output(self, path):
        """--capture-output: stdout and stderr go to the error log file."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def reopen(self):
        """USR1: reopen the log files (after logrotate moved them)."""
        self.flush_access()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    stream = open(handler.baseFilename, handler.mode, encoding=handler.encoding)
                    old = handler.setStream(stream)     # (flushes the old one)
                    if old is not None:
                        old.close()
        if self.access_stream is not None:
            self.access_stream = self.own_access_stream(self.cfg)

    def close(self):
        self.flush_access()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                try:
                    handler.flush()
                except (OSError, ValueError):
                    pass    # its stream was closed under it (an embedding program's)

    def write_unformatted(self, text):
        """``wsgi.errors``: the app's text goes to the streams of the error
        log's handlers as written (gunicorn's way: an app that formats its
        own lines gets no second timestamp and level); through the logger
        when no handler has a stream (syslog only)."""
        streams = [handler.stream for handler in self.error_log.handlers
                   if getattr(handler, "stream", None) is not None]
        if not streams:
            if text.strip():
                self.error("%s", text.rstrip("\n"))
            return
        for stream in streams:
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass

    def debug(self, msg, *args):
        self.error_log.debug(msg, *args)

    def info(self, msg, *args):
        self.error_log.info(msg, *args)

    def warning(self, msg, *args):
        self.error_log.warning(msg, *args)
        self.count_line("warning")

    def error(self, msg, *args):
        self.error_log.error(msg, *args)
        self.count_line("error")

    def critical(self, msg, *args):
        self.error_log.critical(msg, *args)
        self.count_line("critical")

    def exception(self, msg, *args):
        self.error_log.exception(msg, *args)
        self.count_line("exception")

    def log(self, level, msg, *args):
        self.error_log.log(level, msg, *args)

    def count_line(self, level):
        """gunicorn's statsd counter of the error log's lines at ``level``
        (warning and up): gunicorn.log.<level>. The level's own method
        calls it after the line, so a format's %(funcName)s is unchanged."""
        if self.statsd:
            self.statsd.send("gunicorn.log.%s:1|c" % level)

    def access(self, response, request, environ, request_time):
        """One access-log line in ``access_log_format`` (gunicorn's atoms),
        and the request's statsd metrics."""
        status = (response.status or "500").split(None, 1)[0]
        if self.statsd:
            self.statsd.send("gunicorn.requests:1|c\ngunicorn.request.duration:%d|ms\n"
                             "gunicorn.request.status.%s:1|c" % (request_time * 1000, status))
        if not self.access_enabled:
            return
        now = int(time.time())
        if self.access_time[0] != now:
            self.access_time = (now, time.strftime("[%d/%b/%Y:%H:%M:%S %z]",
                                                   time.localtime(now)))
        user = "-"
        if "HTTP_AUTHORIZATION" in environ:
            auth = environ["HTTP_AUTHORIZATION"]
            if auth[:6].lower() == "basic ":
                import binascii
                try:
                    user = binascii.a2b_base64(auth[6:]).decode("latin-1").split(":", 1)[0]
                except (binascii.Error, ValueError):
                    pass
        length = getattr(response, "sent", 0)
        request_line = "%s %s HTTP/1.%d" % (request.method, request.uri, request.version[1]) \
            if request else "-"
        if self.access_default:
            # gunicorn's default format, the common case, without the atom dict.
            line = DEFAULT_ACCESS_LINE % (
                environ.get("REMOTE_ADDR", "-"), user, self.access_time[1], request_line,
                status, length or "-", environ.get("HTTP_REFERER", "-"),
                environ.get("HTTP_USER_AGENT", "-"))
            self.write_access(line)
            return
        atoms = (JSONAccessAtoms if self.access_json else AccessAtoms)({
            "h": environ.get("REMOTE_ADDR", "-"), "l": "-", "u": user,
            "t": self.access_time[1],
            "r": request_line,
            "s": status, "b": length or "-",
            "f": environ.get("HTTP_REFERER", "-"), "a": environ.get("HTTP_USER_AGENT", "-"),
            None: (request, environ, response, request_time),
        })
        try:
            line = self.access_format % atoms
        except (TypeError, ValueError, KeyError):
            self.error_log.exception("Failed to format the access log line")
            return
        self.write_access(line)

    def write_access(self, line):
        if self.access_stream is None:
            self.access_log.info(line)
        else:
            self.access_stream.write(line + "\n")
            self.access_pending = True

    def flush_access(self):
        """Write out buffered access-log lines: the worker calls this before
        it waits for more work, so lines are batched but never held back."""
        if self.access_pending:
            self.access_pending = False
            try:
                self.access_stream.flush()
            except (OSError, ValueError):
                pass


class Statsd:
    """Metrics over UDP in the statsd format, with gunicorn's names
    (``gunicorn.requests``, ``gunicorn.request.duration``,
    ``gunicorn.request.status.N``, ``gunicorn.workers``, ``gunicorn.log.*``)
    and ``gunicorn.workers.busy``. Sending never blocks and never fails."""

    def __init__(self, cfg):
        host, _, port = cfg.statsd_host.rpartition(":")
        self.address = (host.strip("[]") or "localhost", int(port or 8125))
        prefix = cfg.statsd_prefix
        self.prefix = prefix + "." if prefix and not prefix.endswith(".") else prefix
        self.tags = "|#" + cfg.dogstatsd_tags if cfg.dogstatsd_tags else ""
        self.sock = None

    def send(self, metrics):
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET6 if ":" in self.address[0]
                                      else socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        lines = [self.prefix + line + self.tags for line in metrics.split("\n")]
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:
            pass


def apply_logging_config(cfg):
    """--log-config (fileConfig), --log-config-json or ``logconfig_dict``."""
    if not (cfg.logconfig_dict or cfg.logconfig_json or cfg.logconfig):
        return
    import json
    import logging.config
    try:
        if cfg.logconfig_dict:
            logging.config.dictConfig(dict({"version": 1, "disable_existing_loggers": False},
                                           **cfg.logconfig_dict))
        elif cfg.logconfig_json:
            with open(cfg.logconfig_json) as f:
                logging.config.dictConfig(json.load(f))
        elif cfg.logconfig:
            logging.config.fileConfig(cfg.logconfig, disable_existing_loggers=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError("logging config: %s" % exc) from None


# Prometheus' text exposition format, version 0.0.4 (what every Prometheus
# server and client library reads): per metric a HELP and a TYPE line, then
# one line per sample, ``name{label="value",...} number``.
PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def prometheus_lines(name, kind, help_text, samples):
    """The text of one metric: ``samples`` are (name suffix, ((label,
    value), ...), number); a histogram's suffixes are _bucket, _sum, _count."""
    lines = ["# HELP %s %s\n" % (name, help_text.replace("\\", "\\\\").replace("\n", "\\n")),
             "# TYPE %s %s\n" % (name, kind)]
    for suffix, labels, value in samples:
        if labels:
            suffix += "{%s}" % ",".join('%s="%s"' % (label, prometheus_label_value(text))
                                        for label, text in labels)
        lines.append("%s%s %s\n" % (name, suffix, prometheus_number(value)))
    return "".join(lines)


def prometheus_label_value(value):
    if isinstance(value, float):
        return prometheus_number(value)
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_number(value):
    if isinstance(value, float):
        if value == float("inf"):
            return "+Inf"
        return repr(value)
    return str(value)


def read_process_usage(pid):
    """(resident bytes, CPU seconds) of a live process, from /proc/PID/stat;
    None where there is no /proc (or the process is gone)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # proc(5): after the name, field 3 (state) is fields[0]: utime is field
    # 14, stime 15 (clock ticks), rss 24 (pages).
    try:
        ticks = int(fields[11]) + int(fields[12])
        pages = int(fields[21])
    except (IndexError, ValueError):
        return None
    return pages * mmap.PAGESIZE, ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# Process helpers

def sd_notify(state, log):
    """Tell systemd (Type=notify) how we are: READY=1, RELOADING=1,
    STOPPING=1, STATUS=..., WATCHDOG=1. A no-op without $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address[0] == "@":
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", address, exc)


def systemd_watchdog_interval():
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or 0."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        pid = int(os.environ.get("WATCHDOG_PID", os.getpid()))
    except ValueError:
        return 0.0
    return usec / 2e6 if usec > 0 and pid == os.getpid() else 0.0


def open_wakeup_pipe():
    """A self-pipe whose write end is signal.set_wakeup_fd()'s: a signal (or
    an app thread done with a connection) writes a byte that wakes the
    select() of the master or the worker. Both ends non-blocking: a full
    pipe must not block a signal handler, and draining stops when it is
    empty. Not inherited (os.pipe(), PEP 446): a re-exec'd master or the
    app's children must not hold it open."""
    pipe = os.pipe()
    for fd in pipe:
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(pipe[1])
    return pipe


def drain_wakeup_pipe(fd):
    """Empty the self-pipe: its bytes only say "wake up". One read is
    enough unless it came back full (more may be waiting)."""
    size = 4096
    try:
        while len(os.read(fd, size)) == size:
            pass
    except BlockingIOError:
        pass


def set_process_title(title):
    """setproctitle when it is installed, else the kernel's short name."""
    title = "arbiter: " + title
    try:
        import setproctitle
    except ImportError:
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(title[:15])
        except OSError:
            pass
    else:
        setproctitle.setproctitle(title)


def switch_user(cfg):
    """In the worker: drop to ``--user``/``--group`` (and their groups)."""
    if cfg.group is None and cfg.user is None:
        return
    import grp
    import pwd
    gid = uid = None
    if cfg.group is not None:
        gid = int(cfg.group) if cfg.group.isdigit() else grp.getgrnam(cfg.group).gr_gid
    if cfg.user is not None:
        entry = pwd.getpwuid(int(cfg.user)) if cfg.user.isdigit() else pwd.getpwnam(cfg.user)
        uid = entry.pw_uid
        if gid is None:
            gid = entry.pw_gid
        if cfg.initgroups:
            os.initgroups(entry.pw_name, gid)
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def daemonize(cfg):
    """Detach: fork twice, new session, stdio to /dev/null (unless -R)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)
    if not cfg.enable_stdio_inheritance:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)


def prepare_process(cfg):
    """In the master before anything else: directory, environment, sys.path."""
    if cfg.chdir:
        try:
            os.chdir(cfg.chdir)
        except OSError as exc:
            raise ConfigError("can not chdir to %s: %s" % (cfg.chdir, exc.strerror)) from None
    for item in cfg.raw_env:     # checked by to_env_list: KEY=VALUE
        key, _, value = item.partition("=")
        os.environ[key] = value
    for path in reversed(to_list(cfg.pythonpath)):
        sys.path.insert(0, path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def prepare_memory_for_fork():
    """In the master, before the first fork: gc.freeze() moves every object
    that exists now out of the collector's reach, so collections in a worker
    do not write to (and so copy) the pages it shares with the master (the
    preloaded app, above all)."""
    import gc
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def serve(app, **settings):
    """Serve a WSGI app from Python: ``serve(app, bind=["127.0.0.1:8080"])``.
    Returns the exit status."""
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    check_before_start(cfg)
    return Arbiter(cfg, app).run()


def main(argv=None):
    """The command line, gunicorn's: ``arbiter.py [OPTIONS] [APP_MODULE]``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg = load_config(argv)
        prepare_process(cfg)
        check_before_start(cfg)
    except UsageError as exc:
        sys.stderr.write("%s\narbiter.py: error: %s\n" % (USAGE, exc))
        return 2
    except ConfigError as exc:
        sys.stderr.write("Error: %s\n" % exc)
        return 1
    if cfg.print_config:
        for name, value in cfg.items():
            print("%-32s = %r" % (name, value))
        return 0
    if cfg.check_config:
        for warning in cfg.warnings:
            sys.stderr.write("Warning: %s\n" % warning)
        try:
            load_app(cfg.app_uri)
        except AppImportError as exc:
            sys.stderr.write("Error: %s\n" % exc)
            return 1        # gunicorn's status for a failed check
        return 0
    if cfg.daemon:
        daemonize(cfg)
    try:
        server = Arbiter(cfg, argv=argv)    # sets up the logs: a logging config may be wrong
    except ConfigError as exc:
        sys.stderr.write("Error: %s\n" % exc)
        return 1
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
