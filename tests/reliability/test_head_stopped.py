"""Fault: the Ray head a sweep joined (--address) is stopped mid-sweep.

Ray's C++ core ends the driver process at once (no Python exception); `dpsweep sweep`
runs that driver in a child and says so in one line, exit 6. Every finished trial stays
stored once, the printed resume command (run once a head is back on the same address)
runs only what is missing, and nothing of the first head or the driver keeps running.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.test_local_sh import free_ports, local_sh, ray_executable, session_pids
from tests.reliability.test_faults import _rows, _still_running, _tree
from tests.sweep.conftest import tiny_space

# A 4-trial tiny sweep takes 1-3 min on a busy 2-core box; these find a hang without failing a slow one.
SWEEP_TIMEOUT_S = 600
SWEEP_ID = "headstop"


@pytest.fixture
def head_env(tmp_path):
    """cluster/local.sh settings for a token-authenticated head on free ports, in a short
    temp dir under a parent of ours (mode 0700); whatever the test leaves is stopped."""
    ray = ray_executable()
    if ray is None:
        pytest.skip("no `ray` executable next to this Python or on PATH: cannot start a Ray head")
    temp_dir = os.path.join(tempfile.mkdtemp(prefix="dpk-", dir="/tmp"), "ray")
    token = tmp_path / "auth_token"
    token.write_text(os.urandom(16).hex())
    gcs, dashboard, agent, client = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(DPSWEEP_RAY_BIN=ray, DPSWEEP_RAY_TMP=temp_dir, DPSWEEP_RAY_NUM_CPUS="2", DPSWEEP_RAY_AUTH="token",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), DPSWEEP_RAY_PORT=str(gcs),
               DPSWEEP_RAY_DASHBOARD_PORT=str(dashboard), DPSWEEP_RAY_AGENT_PORT=str(agent),
               DPSWEEP_RAY_CLIENT_PORT=str(client), DPSWEEP_RAY_STOP_GRACE_S="6", PYTHONUNBUFFERED="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    yield env, temp_dir
    local_sh("stop", env)
    for pid in session_pids(temp_dir):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(os.path.dirname(temp_dir), ignore_errors=True)


def _start_head(env: dict, temp_dir: str) -> str:
    started = local_sh("start", env)
    if started.returncode != 0:
        pytest.skip(f"`ray start --head` (cluster/local.sh start) failed here: {started.stderr.strip()[-300:]}")
    return Path(temp_dir, "ray_current_cluster").read_text().strip()


def _space(tmp_path: Path, synth_mimic: Path, tiny_model_dir: Path) -> Path:
    """Two targets (8 and inf), two trials each, two at a time."""
    spec = tiny_space(synth_mimic, tiny_model_dir, store=tmp_path / "store")
    spec["privacy"]["epsilons"] = [8, "inf"]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _stop_head_after_first_row(proc: subprocess.Popen, env: dict, store: Path) -> dict[int, int]:
    """Wait for a stored row, stop the head; returns the driver's process tree at that moment."""
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while not _rows(store, SWEEP_ID):
        assert proc.poll() is None, f"sweep ended (exit {proc.returncode}) before a row was stored"
        assert time.monotonic() < deadline, f"no row after {SWEEP_TIMEOUT_S} s"
        time.sleep(0.5)
    tree = _tree["tree"](proc.pid)  # the supervised driver (and whatever it started)
    stopped = local_sh("stop", env)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    return tree


@pytest.mark.ray
@pytest.mark.ray_local
@pytest.mark.cli_subprocess
@pytest.mark.slow(reason="a `ray start --head` stopped mid-sweep and a resume, about 2 min; `make test-slow`")
def test_stopped_head_gives_one_line_and_its_resume_command_finishes_the_sweep(
        head_env, tmp_path, synth_mimic, tiny_model_dir):
    env, temp_dir = head_env
    address = _start_head(env, temp_dir)
    space, store = _space(tmp_path, synth_mimic, tiny_model_dir), tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "dpsweep.cli", "sweep", str(space), "--address", address,
                             "--name", SWEEP_ID, "--runs-dir", str(tmp_path / "runs")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        tree = _stop_head_after_first_row(proc, env, store)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    before = _rows(store, SWEEP_ID)
    assert "Traceback" not in err, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("dpsweep")][-1]
    assert proc.returncode == 6, err[-3000:]
    assert line == err.strip().splitlines()[-1], err[-3000:]  # the last line, and only one such
    assert re.match(rf"dpsweep: error: the sweep's driver process ended abnormally \((exit|signal) \d+\); "
                    rf"the Ray cluster at {re.escape(address)} no longer answers", line), line
    assert f"; {len(before)} trial(s) of sweep {SWEEP_ID} are stored in {store} (dataset tiny-mimic)" in line
    assert len({r["trial_id"] for r in before}) == len(before) >= 1
    assert _still_running(tree) == [], "the driver or a process it started survived the head"
    assert session_pids(temp_dir) == [], "a process of the stopped head is still running"

    assert _start_head(env, temp_dir) == address  # the cluster is back, on the same address
    command = shlex.split(line.partition("once the cluster is back, resume with: ")[2])
    assert command[:2] == ["dpsweep", "sweep"] and command[-1] == "--resume", line
    resumed = subprocess.run([sys.executable, "-m", "dpsweep.cli", *command[1:]], env=env, capture_output=True,
                             text=True, timeout=SWEEP_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(store, SWEEP_ID)
    done = [r for r in rows if r["status"] in ("completed", "infeasible")]
    assert sorted(r["epsilon_target"] for r in done) == [8, 8, float("inf"), float("inf")], rows
    assert len({r["trial_id"] for r in rows}) == len(rows)  # no trial stored twice
    kept = {r["trial_id"]: r for r in rows}
    assert all(kept[r["trial_id"]] == r for r in before if r["status"] != "failed")  # not run again


@pytest.mark.cli_subprocess
def test_supervised_sweep_passes_its_own_exit_code_and_line_through(tmp_path):
    """A child that ends through dpsweep's own paths (here bad input, before Ray) is not
    reported as abnormal: its code and its one line, nothing added."""
    proc = subprocess.run([sys.executable, "-m", "dpsweep.cli", "sweep", str(tmp_path / "missing.yaml"),
                           "--address", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpsweep: error:") and "abnormally" not in lines[0], lines


def test_abnormal_end_line_says_the_cluster_is_gone_and_how_to_resume(tmp_path):
    from dpsweep.sweep.supervise import abnormal_end_line

    (port,) = free_ports(1)  # nothing listens there
    state = {"sweep_id": "s1", "dataset": "tiny-mimic", "store": str(tmp_path / "store"),
             "gcs_address": f"127.0.0.1:{port}"}
    line = abnormal_end_line(-9, state, file="a b.yaml", address="auto", runs_dir="runs/sweeps")
    assert line.startswith(f"dpsweep: error: the sweep's driver process ended abnormally (signal 9); the Ray "
                           f"cluster at 127.0.0.1:{port} no longer answers"), line
    assert line.endswith(f"once the cluster is back, resume with: dpsweep sweep 'a b.yaml' --store "
                         f"{tmp_path / 'store'} --name s1 --runs-dir runs/sweeps --address auto --resume"), line
    early = abnormal_end_line(1, {}, file="a.yaml", address="auto", runs_dir="runs")
    assert early.endswith("(exit 1); the Ray cluster at auto may have stopped; the sweep had not started, "
                          "nothing was stored; run the same command again"), early
