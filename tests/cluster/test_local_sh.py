"""cluster/local.sh: shell syntax, and a real start -> status -> stop round trip.

The round trip uses its own short temp dir, free ports and a token file of its own, so it
neither touches ~/.ray nor collides with other Ray instances on the machine; it asserts that
no process of its session survives `stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

LOCAL_SH = Path(__file__).resolve().parents[2] / "cluster" / "local.sh"


def test_local_sh_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(LOCAL_SH)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_local_sh_rejects_an_unknown_command():
    proc = subprocess.run(["bash", str(LOCAL_SH), "restart"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_local_sh_refuses_a_temp_dir_other_users_can_reach(tmp_path):
    """/tmp is world-writable: a temp dir right under it (which Ray makes 0777) is refused
    before anything starts."""
    env = {**os.environ, "DPSWEEP_RAY_TMP": f"/tmp/dpsweep-h13-{os.getpid()}", "DPSWEEP_RAY_BIN": "/bin/true"}
    proc = subprocess.run(["bash", str(LOCAL_SH), "start"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "parent of DPSWEEP_RAY_TMP (/tmp)" in proc.stderr, proc.stderr
    assert not os.path.exists(env["DPSWEEP_RAY_TMP"])


def ray_executable() -> str | None:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.is_file() else shutil.which("ray")


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def session_pids(temp_dir: str) -> list[int]:
    """Live processes whose command line names the session's temp dir (zombies have none)."""
    proc = subprocess.run(["pgrep", "-f", temp_dir], capture_output=True, text=True)
    return [int(pid) for pid in proc.stdout.split()]


@pytest.fixture
def session_env(tmp_path):
    ray = ray_executable()
    if ray is None:
        pytest.skip("no `ray` executable (next to this Python or on PATH): cannot start a Ray head")
    # Short on purpose: Ray's Unix socket paths under the temp dir must stay below 108 bytes.
    # Ray makes the temp dir 0777; its parent (mkdtemp: ours, 0700) keeps other users out.
    temp_dir = os.path.join(tempfile.mkdtemp(prefix="dpr-", dir="/tmp"), "ray")
    token = tmp_path / "auth_token"
    token.write_text(os.urandom(16).hex())
    gcs, dashboard, agent, client = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(DPSWEEP_RAY_BIN=ray, DPSWEEP_RAY_TMP=temp_dir, DPSWEEP_RAY_NUM_CPUS="1",
               DPSWEEP_RAY_AUTH="token", RAY_AUTH_TOKEN_PATH=str(token), DPSWEEP_RAY_PORT=str(gcs),
               DPSWEEP_RAY_DASHBOARD_PORT=str(dashboard), DPSWEEP_RAY_AGENT_PORT=str(agent),
               DPSWEEP_RAY_CLIENT_PORT=str(client), DPSWEEP_RAY_STOP_GRACE_S="9")
    yield env, temp_dir
    # Whatever happened above: stop the session, then end any process of it that is left.
    subprocess.run(["bash", str(LOCAL_SH), "stop"], env=env, capture_output=True, timeout=60)
    for pid in session_pids(temp_dir):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(os.path.dirname(temp_dir), ignore_errors=True)


def local_sh(command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LOCAL_SH), command], env=env, capture_output=True, text=True,
                          timeout=90)


@pytest.mark.ray
@pytest.mark.ray_local
def test_start_status_stop_round_trip(session_env):
    env, temp_dir = session_env
    address_file = Path(temp_dir) / "ray_current_cluster"

    started = local_sh("start", env)
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    assert address_file.read_text().strip().endswith(f":{env['DPSWEEP_RAY_PORT']}")
    assert "RAY_AUTH_MODE=token" in started.stdout and "--address auto" in started.stdout
    assert stat.S_IMODE(os.stat(os.path.dirname(temp_dir)).st_mode) == 0o700

    again = local_sh("start", env)
    assert again.returncode == 2 and "already running" in again.stderr

    status = local_sh("status", env)
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    assert "auth: token" in status.stdout and "Active:" in status.stdout

    stopped = local_sh("stop", env)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert session_pids(temp_dir) == [], "processes of the session survived `local.sh stop`"
    assert not address_file.exists(), "stop must remove the stale ray_current_cluster"
    assert local_sh("status", env).returncode == 1
