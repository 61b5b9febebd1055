"""A sweep on a real `ray start --head` (cluster/local.sh): joined with --address auto, and
submitted with `ray job submit`; the head is stopped afterwards with nothing left behind."""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from dpsweep.results import ResultStore
from tests.cluster.test_local_sh import free_ports, local_sh, ray_executable, session_pids
from tests.sweep.conftest import tiny_space

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray, pytest.mark.ray_local]  # every test here runs on a `ray start --head`


@pytest.fixture(scope="module")
def head(tmp_path_factory, synth_mimic, tiny_model_dir):
    """A token-authenticated head on this machine, plus a tiny 2-target search space."""
    ray = ray_executable()
    if ray is None:
        pytest.skip("no `ray` executable next to this Python or on PATH: cannot start a Ray head")
    tmp = tmp_path_factory.mktemp("head")
    # short (Unix socket paths < 108 bytes), under a parent of ours, mode 0700 (Ray makes temp_dir 0777)
    temp_dir = os.path.join(tempfile.mkdtemp(prefix="dph-", dir="/tmp"), "ray")
    token = tmp / "auth_token"
    token.write_text(os.urandom(16).hex())
    gcs, dashboard, agent, client = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(DPSWEEP_RAY_BIN=ray, DPSWEEP_RAY_TMP=temp_dir, DPSWEEP_RAY_NUM_CPUS="2", DPSWEEP_RAY_AUTH="token",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), DPSWEEP_RAY_PORT=str(gcs),
               DPSWEEP_RAY_DASHBOARD_PORT=str(dashboard), DPSWEEP_RAY_AGENT_PORT=str(agent),
               DPSWEEP_RAY_CLIENT_PORT=str(client), DPSWEEP_RAY_STOP_GRACE_S="9",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    space = tmp / "space.yaml"
    spec = tiny_space(synth_mimic, tiny_model_dir, store=tmp / "store", trials_per_target=1)
    spec["privacy"]["epsilons"] = [8, "inf"]
    space.write_text(yaml.safe_dump(spec, sort_keys=False))
    started = local_sh("start", env)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield env, space, tmp / "store", dashboard
    finally:
        stopped = local_sh("stop", env)
        left = session_pids(temp_dir)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(os.path.dirname(temp_dir), ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
        assert left == [], "Ray processes of the head survived `local.sh stop`"


def _rows(store: Path, sweep_id: str) -> list[dict]:
    table = ResultStore(store).read("tiny-mimic")
    return table.filter(pc.equal(table["sweep_id"], sweep_id)).to_pylist()


def _check(rows: list[dict]) -> None:
    assert sorted(r["epsilon_target"] for r in rows) == [8, math.inf]
    assert all(r["status"] in ("completed", "infeasible") for r in rows), [r["error"] for r in rows]


# Timeouts: these sweeps take 2-4 min on a busy 2-core box; 900 s leaves room without hiding a hang.
@pytest.mark.slow(reason="a sweep joining a `ray start --head`, about 80 s; test_local_sh.py's round trip runs in CI")
def test_sweep_joins_head_with_address_auto(head, tmp_path):
    env, space, store, _ = head
    proc = subprocess.run([sys.executable, "-m", "dpsweep.cli", "sweep", str(space), "--address", "auto",
                           "--name", "joined", "--runs-dir", str(tmp_path / "runs")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "joining Ray cluster at auto" in proc.stderr and "starting a local Ray" not in proc.stderr
    _check(_rows(store, "joined"))


@pytest.mark.slow(reason="a Ray job submission, about 80 s; test_sweep_joins_head_with_address_auto covers the head in CI")
def test_sweep_submitted_as_ray_job_succeeds(head, tmp_path):
    env, space, store, dashboard = head
    ray = env["DPSWEEP_RAY_BIN"]
    proc = subprocess.run([ray, "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                           "--working-dir", str(REPO), "--", "dpsweep", "sweep", str(space), "--name", "job",
                           "--runs-dir", str(tmp_path / "runs")],
                          env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    job_id = re.search(r"raysubmit_\w+", proc.stdout + proc.stderr).group(0)
    ask = ("from ray.job_submission import JobSubmissionClient as C; import sys; "
           f"print(C('http://127.0.0.1:{dashboard}').get_job_status('{job_id}').value)")
    status = subprocess.run([sys.executable, "-c", ask], env=env, capture_output=True, text=True, timeout=60)
    assert status.stdout.strip() == "SUCCEEDED", status.stdout + status.stderr[-2000:]
    _check(_rows(store, "job"))
