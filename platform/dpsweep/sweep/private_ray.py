"""The private Ray a sweep driver starts: private folders, its own token, nothing left behind.

Ray makes its temp dir world-writable (mode 0777, every time it starts), so a private
session lives one level down, in ``/tmp/dpsweep-ray-<uid>/d<driver pid>-<n>``, under a parent
that is mode 0700 and ours. The session gets its own random token (mode 0600, in that
folder; ``~/.ray`` is never touched): every Ray process of the session authenticates with
it. The session's processes are found again by that token's path in their environment
(``RAY_AUTH_TOKEN_PATH``), the folder on their command line, or, for Ray's agents (which
get a filtered environment and rename themselves ``ray::DashboardAgent``), a file they
hold open under the folder (their logs).

A driver killed with SIGKILL cannot stop its Ray; Ray's dashboard and runtime-env agents
then run on, parented to init. So every private start (and ``dpsweep ray cleanup``) first
stops the processes of sessions whose driver is dead and removes their folders. A driver
is "dead" when no process has its pid and start time (both written in ``driver.json``
before Ray starts), so a reused pid is not mistaken for it. Linux only (``/proc``);
elsewhere nothing is found and nothing is stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dpsweep.errors import ConfigError

PARENT_ENV = "DPSWEEP_PRIVATE_RAY_DIR"  # where private sessions live (default /tmp/dpsweep-ray-<uid>)
DRIVER_FILE = "driver.json"
TOKEN_FILE = "auth_token"
STOP_GRACE_S = 10.0
_SESSION = re.compile(r"d\d+(?:-\d+)?")
_AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
_PROC = Path("/proc")
_NEW_S = 60.0
_COUNTER = itertools.count(1)  # sessions of this process: d<pid>-1, d<pid>-2, ...
_ACTIVE: set[Path] = set()  # this process's sessions not yet closed


def private_parent() -> Path:
    """The per-user parent of private sessions: short (Ray's socket paths must stay < 108 bytes)."""
    return Path(os.environ.get(PARENT_ENV) or f"/tmp/dpsweep-ray-{os.getuid()}")


def ensure_private_parent(parent: Path) -> Path:
    """Create ``parent`` mode 0700, or check an existing one is a folder of ours; make it 0700."""
    with contextlib.suppress(FileExistsError):
        parent.mkdir(mode=0o700, parents=True)
    info = os.lstat(parent)
    problem = ("not a folder" if not stat.S_ISDIR(info.st_mode)
               else f"owned by uid {info.st_uid}" if info.st_uid != os.getuid() else None)
    if problem:
        raise ConfigError(f"{parent} must be a folder owned by you (uid {os.getuid()}) to hold private Ray "
                          f"sessions, but it is {problem}; remove it, or set {PARENT_ENV} to another folder")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(parent, 0o700)
    return parent


# ---- processes --------------------------------------------------------------------------

def _start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22), None if gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    if fields[0] == "Z":  # a zombie holds no port and runs no code
        return None
    return int(fields[19])


def driver_alive(record: dict) -> bool:
    """Whether the driver that wrote ``record`` (its driver.json) still runs."""
    try:
        pid, start = int(record["pid"]), int(record["start_ticks"])
    except (KeyError, TypeError, ValueError):
        return False
    return _start_ticks(pid) == start


def session_pids(session: Path) -> list[int]:
    """Live processes of the session in ``session`` (this process excluded), found by the
    token path in their environment, the folder on their command line, or a file they hold
    open under the folder."""
    marker = f"RAY_AUTH_TOKEN_PATH={session / TOKEN_FILE}".encode()
    folder = f"{session}/".encode()
    found = []
    if not _PROC.is_dir():
        return found
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone, or another user's
            continue
        if ((marker in environ or folder in cmdline or _holds_file_under(entry, str(session) + "/"))
                and _start_ticks(int(entry.name)) is not None):
            found.append(int(entry.name))
    return sorted(found)


def _holds_file_under(proc: Path, folder: str) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(folder):
                return True
    return False


def stop_processes(pids: list[int], *, grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM, then SIGKILL what still runs after ``grace_s`` (Ray's agents ignore SIGTERM)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(_start_ticks(p) is not None for p in pids):
            time.sleep(0.2)
    return len(pids)


@dataclass(frozen=True)
class Cleaned:
    session: Path
    stopped: int


def cleanup_stale_sessions(parent: Path | None = None, *, grace_s: float = STOP_GRACE_S) -> list[Cleaned]:
    """Stop the processes of every session under ``parent`` whose driver is dead; remove its folder."""
    parent = parent or private_parent()
    if not parent.is_dir():
        return []
    cleaned = []
    for session in sorted(parent.iterdir()):
        if not _SESSION.fullmatch(session.name) or not session.is_dir() or session.is_symlink():
            continue
        try:
            record = json.loads((session / DRIVER_FILE).read_text())
        except (OSError, ValueError):
            record = {}
        if driver_alive(record) or (not record and time.time() - session.stat().st_mtime < _NEW_S):
            continue  # a running driver's, or one that is writing its driver.json right now
        stopped = stop_processes(session_pids(session), grace_s=grace_s)
        shutil.rmtree(session, ignore_errors=True)
        cleaned.append(Cleaned(session, stopped))
    return cleaned


# ---- one private session ----------------------------------------------------------------

@dataclass(frozen=True)
class PrivateSession:
    """A private Ray session's folder (``ray.init(_temp_dir=...)``) and token file."""

    folder: Path
    token: Path


@contextlib.contextmanager
def private_session(log=None) -> Iterator[PrivateSession]:
    """Prepare a private Ray session around ``ray.init``/``ray.shutdown`` (which the caller runs).

    Before: stale sessions cleaned, the folder and token made, the token put in this
    process's environment (Ray's children inherit it). After: the session's processes that
    outlived ``ray.shutdown`` stopped, the environment restored. The folder (Ray's logs)
    stays until the next private start removes it.
    """
    parent = ensure_private_parent(private_parent())
    for item in cleanup_stale_sessions(parent):
        if log is not None and item.stopped:
            log(f"stopped {item.stopped} process(es) left by a killed sweep (Ray session {item.session})")
    _remove_own_closed_sessions(parent)
    folder = parent / f"d{os.getpid()}-{next(_COUNTER)}"
    folder.mkdir(mode=0o700)
    _ACTIVE.add(folder)
    (folder / DRIVER_FILE).write_text(json.dumps({"pid": os.getpid(), "start_ticks": _start_ticks(os.getpid())}))
    token = folder / TOKEN_FILE
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    saved = {name: os.environ.get(name) for name in _AUTH_ENV}
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would win over the token path
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    _reload_ray_auth()
    try:
        yield PrivateSession(folder, token)
    finally:
        _ACTIVE.discard(folder)
        stop_processes(session_pids(folder))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reload_ray_auth()


def _remove_own_closed_sessions(parent: Path) -> None:
    """Folders of this process's earlier, closed sessions (kept for their logs until now)."""
    for session in parent.glob(f"d{os.getpid()}-*"):
        if session not in _ACTIVE and _SESSION.fullmatch(session.name) and not session.is_symlink():
            stop_processes(session_pids(session))
            shutil.rmtree(session, ignore_errors=True)


def _reload_ray_auth() -> None:
    """Make this process's Ray re-read RAY_AUTH_* (it caches the mode and the token).

    Private Ray API (ray._raylet, as `ray get-auth-token` uses it); see docs/INTERNALS.md.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
