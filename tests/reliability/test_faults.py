"""Fault suite: every finished trial stored exactly once, none run again, no orphan process,
one clear line (no traceback), under SIGINT, a SIGKILLed sweep driver or writer, a full disk
and a read-only store.

A SIGKILLed Ray Train worker is covered by
tests/distributed/test_workers.py::test_killed_worker_resumes_from_its_checkpoint (the
trial resumes from its checkpoint and is stored once), not repeated here.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from dpsweep.cli import main
from dpsweep.results import ResultStore
from dpsweep.sweep import private_ray
from tests.sweep.conftest import tiny_space

DATASET = "tiny-mimic"
# Timeouts: a 4-trial tiny sweep takes 1-3 min on a busy 2-core box; 600 s finds a hang
# without failing a slow machine.
SWEEP_TIMEOUT_S = 600


def _rows(store: Path, sweep_id: str) -> list[dict]:
    store = ResultStore(store)
    if DATASET not in store.datasets():
        return []
    table = store.read(DATASET)
    return table.filter(pc.equal(table["sweep_id"], sweep_id)).to_pylist()


# The driver's process tree, read from /proc independently of dpsweep's own lookup
# (dpsweep.sweep.private_ray.session_pids), so a process that lookup misses is still seen.
TREE = r"""
import os

def start_ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])

def tree(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(open(f"/proc/{name}/stat").read().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            ticks = start_ticks(child)
            if ticks is not None:
                found[child] = ticks
                todo.append(child)
    return found
"""
_tree: dict = {}
exec(TREE, _tree)


def _still_running(snapshot: dict[int, int]) -> list[int]:
    """PIDs of a snapshot still running (the same processes: same start time)."""
    return [pid for pid, ticks in snapshot.items() if _tree["start_ticks"](pid) == ticks]


def _one_line(err: str) -> str:
    """The error output's last line, checked to be dpsweep's and the only traceback-free one."""
    assert "Traceback" not in err, err[-3000:]
    return err.strip().splitlines()[-1]


@pytest.fixture
def ray_parent(monkeypatch):
    """Private Ray sessions of this test in a short folder of their own (socket paths < 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="dpr", dir="/tmp"))
    monkeypatch.setenv(private_ray.PARENT_ENV, str(folder))
    yield folder
    for session in folder.glob("d*"):
        private_ray.stop_processes(private_ray.session_pids(session), grace_s=2)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture
def space(tmp_path, synth_mimic, tiny_model_dir) -> Path:
    """Two targets (8 and inf), two trials each, two at a time."""
    spec = tiny_space(synth_mimic, tiny_model_dir, store=tmp_path / "store")
    spec["privacy"]["epsilons"] = [8, "inf"]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _start(argv: list[str], *, code: str | None = None, **env: str) -> subprocess.Popen:
    prefix = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "dpsweep.cli", *argv]
    return subprocess.Popen(prefix, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_rows(proc: subprocess.Popen, store: Path, sweep_id: str, n: int) -> None:
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while len(_rows(store, sweep_id)) < n:
        assert proc.poll() is None, f"sweep ended (exit {proc.returncode}) before {n} row(s) were stored"
        assert time.monotonic() < deadline, f"fewer than {n} row(s) after {SWEEP_TIMEOUT_S} s"
        time.sleep(0.5)


def _check_complete(rows: list[dict], before: list[dict]) -> None:
    """Each of the 4 trials stored once, the rows from before untouched (so not run again)."""
    assert sorted(r["epsilon_target"] for r in rows) == [8, 8, math.inf, math.inf]
    assert len({r["trial_id"] for r in rows}) == len(rows)
    assert all(r["status"] in ("completed", "infeasible") for r in rows), [r["error"] for r in rows]
    kept = {r["trial_id"]: r for r in rows}
    assert all(kept[r["trial_id"]] == r for r in before)


@pytest.mark.ray
@pytest.mark.cli_subprocess
def test_sigint_stops_the_sweep_says_how_to_resume_and_resume_finishes_it(space, tmp_path, ray_parent):
    store, runs = tmp_path / "store", str(tmp_path / "runs")
    proc = _start(["sweep", str(space), "--name", "int", "--runs-dir", runs])
    try:
        _wait_for_rows(proc, store, "int", 1)
        tree = _tree["tree"](proc.pid)  # Ray's processes, agents included, and the trials'
        assert tree, "no Ray process under the driver"
        proc.send_signal(signal.SIGINT)  # the driver only, as `kill -INT`; Ctrl-C in a shell is the same
        out, err = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    before = _rows(store, "int")
    line = _one_line(err)
    assert proc.returncode == 130, err[-3000:]
    assert line.startswith(f"dpsweep: interrupted: {len(before)} trial(s) of sweep int are stored in {store}")
    assert "Pareto front" not in out and "rows written" not in out  # nothing printed as if complete
    assert "Tuner.restore" not in err  # Tune's own (wrong) resume advice is not shown
    assert _still_running(tree) == []  # the driver stopped its whole Ray, agents included
    command = shlex.split(line.partition("resume with: ")[2])
    assert command[:2] == ["dpsweep", "sweep"] and command[-1] == "--resume"
    assert main(command[1:]) == 0
    _check_complete(_rows(store, "int"), before)


def test_after_the_interrupt_worker_stderr_no_longer_reaches_the_console():
    """Ray's SIGTERM handler in a stopped trial actor prints a traceback to its stderr, which
    Ray forwards to the driver; from the interrupt on, only worker stdout is forwarded."""
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    from dpsweep.sweep.runner import _drop_ray_sigterm_tracebacks, _quiet_worker_stderr

    seen = []
    dispatcher.add_handler("ray_print_logs", seen.append)
    try:
        err, out = {"is_err": True, "lines": ["Traceback"]}, {"is_err": False, "lines": ["progress"]}
        dispatcher.emit(err)
        _drop_ray_sigterm_tracebacks()  # what the sweep installs after ray.init
        noise = {"is_err": True, "pid": 7, "lines": RAY_SIGTERM_BLOCK}
        dispatcher.emit(noise)  # dropped whole: nothing reaches the console
        _quiet_worker_stderr()
        _quiet_worker_stderr()  # a second interrupt wraps nothing twice
        dispatcher.emit(err)
        dispatcher.emit(out)
        assert seen == [err, out]
        assert sum(name == "ray_print_logs" for name, _ in dispatcher.handlers) == 1
    finally:
        dispatcher.remove_handler("ray_print_logs")  # what ray.shutdown does: the name still matches
    assert all(name != "ray_print_logs" for name, _ in dispatcher.handlers)


RAY_SIGTERM_BLOCK = [  # what a trial actor printed in CI when Tune stopped it
    "Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7fba10ec7ec0>",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove',
    "    def _remove(item, selfref=ref(self)):",
    "",
    '  File ".venv/lib/python3.11/site-packages/ray/_private/worker.py", line 1063, in sigterm_handler',
    "    raise_sys_exit_with_custom_error_message(",
    "SystemExit: 1",
]


def test_rays_sigterm_traceback_is_dropped_and_every_other_line_kept():
    from dpsweep.sweep.runner import SigtermNoiseFilter

    other = ["Exception ignored in: <function f>", "Traceback (most recent call last):",
             '  File "x.py", line 1, in f', "ValueError: a real error"]
    one = SigtermNoiseFilter()
    assert one(["[dpsweep] done", *RAY_SIGTERM_BLOCK, "[dpsweep] next"]) == ["[dpsweep] done", "[dpsweep] next"]
    assert one(other) == other  # any other ignored exception shows whole
    split = SigtermNoiseFilter()  # a block cut across Ray's log batches
    assert split(["a", *RAY_SIGTERM_BLOCK[:3]]) == ["a"] and split(RAY_SIGTERM_BLOCK[3:] + ["b"]) == ["b"]
    assert SigtermNoiseFilter(hold=3)(other[:3] + ["  more", "  lines"]) == other[:3] + ["  more", "  lines"]


# The sweep driver, SIGKILLed by itself at the moment its first row's file is written and
# fsynced but not yet published: the worst time for the driver to die.
KILLED_AT_PUBLISH = TREE + r"""
import json, signal, sys
import dpsweep.results.store as store

def die(tmp, final):
    with open(os.environ["TREE_FILE"], "w") as f:
        json.dump(tree(os.getpid()), f)  # what the driver leaves behind
    print("killed at publish", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

store._link_no_clobber = die
from dpsweep.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.ray
@pytest.mark.cli_subprocess
@pytest.mark.slow(reason="a SIGKILLed driver and a resume, about 110 s; the SIGINT test above runs in CI")
def test_sigkilled_driver_leaves_nothing_running_and_resume_publishes_its_finished_trial(
        space, tmp_path, ray_parent):
    store, runs = tmp_path / "store", str(tmp_path / "runs")
    tree_file = tmp_path / "tree.json"
    proc = _start(["sweep", str(space), "--name", "kill", "--runs-dir", runs], code=KILLED_AT_PUBLISH,
                  TREE_FILE=str(tree_file))
    out, err = proc.communicate(timeout=SWEEP_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL and "killed at publish" in out, err[-3000:]
    tree = {int(pid): ticks for pid, ticks in json.loads(tree_file.read_text()).items()}
    time.sleep(5)
    assert _still_running(tree), "nothing outlived the killed driver: this test would prove nothing"
    [session] = ray_parent.glob(f"d{proc.pid}-*")
    assert stat.S_IMODE(os.stat(ray_parent).st_mode) == 0o700  # Ray makes its own folder 0777: the parent is private
    assert stat.S_IMODE(os.stat(session / private_ray.TOKEN_FILE).st_mode) == 0o600
    temps = list((store / f"dataset={DATASET}").glob(".kill__*.tmp"))
    assert len(temps) == 1 and _rows(store, "kill") == []  # a finished trial, stranded
    stranded = temps[0].name[1:].split(".parquet.")[0].partition("__")[2]

    code = main(["sweep", str(space), "--name", "kill", "--runs-dir", runs, "--resume"])
    assert code == 0
    assert _still_running(tree) == [] and not session.exists()  # cleaned on the next start
    rows = _rows(store, "kill")
    assert [r["trial_id"] for r in rows].count(stranded) == 1  # published once, not run again
    assert sorted(r["epsilon_target"] for r in rows) == [8, 8, math.inf, math.inf]
    assert len({r["trial_id"] for r in rows}) == 4
    assert not list((store / f"dataset={DATASET}").glob(".*.tmp"))


def test_resume_publishes_only_the_resumed_sweeps_temp_files(tmp_path, capsys):
    """A killed driver's finished row (a complete temp file) is published by --resume; another
    sweep's young temp file is left to `dpsweep store repair` (its writer may be alive)."""
    import shutil

    from dpsweep.bench.store_load import load_row
    from dpsweep.results import ResultStore
    from dpsweep.sweep.commands import publish_unfinished_writes
    from dpsweep.sweep.spec import spec_from_mapping
    from tests.sweep.conftest import tiny_space

    store = ResultStore(tmp_path / "store")
    spec = spec_from_mapping(tiny_space(tmp_path, tmp_path, store=tmp_path / "store"), source="s.yaml")
    partition = tmp_path / "store" / "dataset=load-test"
    for sweep_id in ("tiny-20260101-000000", "tiny-2-20260101-000000"):
        final = Path(store.append({**load_row(0, 0), "sweep_id": sweep_id}))
        shutil.move(final, partition / f".{final.name}.{'a' * 32}.tmp")  # as a writer killed before publishing
    publish_unfinished_writes(store, spec, name=None)
    assert "published 1 finished row(s)" in capsys.readouterr().err
    assert [r["sweep_id"] for r in store.read().to_pylist()] == ["tiny-20260101-000000"]
    assert len(list(partition.glob(".tiny-2-*.tmp"))) == 1


# A writer SIGKILLed between writing (fsynced) and publishing its row file.
WRITER_KILLED = r"""
import os, signal, sys
import dpsweep.results.store as store
from dpsweep.bench.store_load import load_row

target = store.ResultStore(sys.argv[1])
target.append(load_row(0, 0))
store._link_no_clobber = lambda tmp, final: os.kill(os.getpid(), signal.SIGKILL)
target.append(load_row(0, 1))
"""


@pytest.mark.cli_subprocess
def test_sigkilled_writer_row_is_published_once_by_repair(tmp_path, capsys):
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", WRITER_KILLED, str(store)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [r["trial_id"] for r in ResultStore(store).read().to_pylist()] == ["w00-r0000"]
    assert main(["store", "repair", "--store", str(store), "--min-age-s", "0"]) == 0
    assert "1 published, 0 removed, 0 kept" in capsys.readouterr().err
    assert main(["store", "repair", "--store", str(store), "--min-age-s", "0"]) == 0  # idempotent
    assert "0 published, 0 removed, 0 kept" in capsys.readouterr().err
    rows = ResultStore(store).read().to_pylist()
    assert sorted(r["trial_id"] for r in rows) == ["w00-r0000", "w00-r0001"]
    from dpsweep.bench.store_load import load_row

    with pytest.raises(FileExistsError):  # writing the row again is refused: no duplicate
        ResultStore(store).append(load_row(0, 1))


def _mount(args: list[str]) -> str | None:
    """None when mounted, else why not (a reason to skip: mount needs root or CAP_SYS_ADMIN)."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    return None if done.returncode == 0 else f"mount {' '.join(args)} not permitted here: {done.stderr.strip()}"


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs: passes the store's preflight (1 MiB free), and fills up when asked."""
    mount = tmp_path / "disk"
    mount.mkdir()
    why = _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)])
    if why:
        pytest.skip(why)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# `dpsweep train --store`, where the store's disk breaks while the trial trains: after the
# preflight passed and before the row is written.
TRAIN_THEN_BREAK = r"""
import os, subprocess, sys
import dpsweep.train as train

real, mount, how = train.run_trial, sys.argv[1], sys.argv[2]

def run_then_break(*args, **kwargs):
    result = real(*args, **kwargs)
    if how == "full":
        with open(os.path.join(mount, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"x" * 65536)
                    f.flush()
            except OSError:
                pass
    else:
        subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
    return result

train.run_trial = run_then_break
from dpsweep.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.cli_subprocess
@pytest.mark.parametrize("how", ["full", "read-only"])
def test_store_disk_breaking_during_training_keeps_the_trial(how, tmpfs, tmp_path, tiny_model_dir, synth_mimic):
    store = tmpfs / "store"
    argv = ["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic), "--model",
            str(tiny_model_dir), "--max-length", "32", "--max-epochs", "0.3", "--rank", "2", "--epsilon", "8",
            "--sigma", "1.0", "--accountant", "rdp", "--json", "--store", str(store), "--sweep-id", "disk"]
    proc = subprocess.run([sys.executable, "-c", TRAIN_THEN_BREAK, str(tmpfs), how, *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    line = _one_line(proc.stderr)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["status"] == "completed"  # the results are still shown
    assert ("No space left" if how == "full" else "Read-only") in line and "store import-rows" in line
    saved = list((tmp_path / "recovered-rows").glob("*.json"))
    assert len(saved) == 1 and str(saved[0]) in line
    assert not list(store.glob("dataset=*/*.parquet"))
    if how == "full":
        (tmpfs / "filler").unlink()
    else:
        assert _mount(["-o", "remount,rw", str(tmpfs)]) is None
    assert main(["store", "import-rows", str(saved[0]), "--store", str(store)]) == 0
    assert main(["store", "import-rows", str(saved[0]), "--store", str(store)]) == 0  # again: no duplicate
    rows = ResultStore(store).read().to_pylist()
    assert len(rows) == 1 and rows[0]["sweep_id"] == "disk" and rows[0]["status"] == "completed"
