"""The private Ray's folders and leftovers, without starting Ray: a 0700 parent, and the
processes of a dead driver's session stopped by `dpsweep ray cleanup`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dpsweep.cli import main
from dpsweep.errors import ConfigError
from dpsweep.sweep import private_ray
from dpsweep.sweep.private_ray import (
    DRIVER_FILE,
    TOKEN_FILE,
    cleanup_stale_sessions,
    ensure_private_parent,
    session_pids,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")

# Like Ray's dashboard agent: ignores SIGTERM; holds its log file (argv[1]) open under the session.
AGENT = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); log = open(sys.argv[1], 'a'); "
         "print('up', flush=True); time.sleep(600)")


@pytest.fixture
def parent(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="dpr", dir="/tmp"))
    monkeypatch.setenv(private_ray.PARENT_ENV, str(folder))
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _session(parent: Path, name: str, record: dict) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / DRIVER_FILE).write_text(json.dumps(record))
    return folder


def _agent(folder: Path, *, marked: bool) -> subprocess.Popen:
    """A process of the session: with its token path in the environment (as gcs, raylet and
    workers), or only a log file open under the folder (as Ray's agents, renamed and with a
    filtered environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    if marked:
        env["RAY_AUTH_TOKEN_PATH"] = str(folder / TOKEN_FILE)
    log = folder / "logs" / "agent.log" if not marked else Path(os.devnull)
    log.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", AGENT, str(log)], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "up"
    return proc


def test_parent_is_made_private(parent):
    os.chmod(parent, 0o755)
    ensure_private_parent(parent)
    assert stat.S_IMODE(os.stat(parent).st_mode) == 0o700
    fresh = parent / "new"
    ensure_private_parent(fresh)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_parent_of_another_user_is_refused(parent):
    foreign = parent / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        ensure_private_parent(foreign)


def test_cleanup_stops_a_dead_drivers_leftovers_and_spares_a_live_one(parent, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = _session(parent, f"d{dead_pid}", {"pid": dead_pid, "start_ticks": 1})
    live = _session(parent, f"d{os.getpid()}",
                    {"pid": os.getpid(), "start_ticks": private_ray._start_ticks(os.getpid())})
    leftovers = [_agent(stale, marked=True), _agent(stale, marked=False)]
    running = _agent(live, marked=True)
    try:
        assert session_pids(stale) == sorted(p.pid for p in leftovers) and session_pids(live) == [running.pid]
        started = time.monotonic()
        cleaned = cleanup_stale_sessions(parent, grace_s=1.0)
        assert [(c.session, c.stopped) for c in cleaned] == [(stale, 2)]
        for leftover in leftovers:  # SIGTERM was ignored: SIGKILL after the grace
            assert leftover.wait(timeout=30) == -signal.SIGKILL
        assert time.monotonic() - started < 20
        assert not stale.exists() and live.is_dir() and running.poll() is None
        assert main(["ray", "cleanup"]) == 0  # the command: nothing stale is left
        assert "0 stale session(s) removed, 0 process(es) stopped" in capsys.readouterr().err
    finally:
        for proc in (*leftovers, running):
            proc.kill()
            proc.wait()

