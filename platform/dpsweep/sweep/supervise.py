"""A sweep that joins a Ray cluster (--address) runs its driver in a child process.

Why: when that cluster stops mid-sweep (its head is stopped, its raylet dies), Ray's C++
core ends the driver process at once (QuickExit: no Python exception, no `finally`, no
atexit), so the driver itself cannot say what happened. Measured with Ray 2.60: `dpsweep
sweep --address HOST:PORT` exited 1 with no dpsweep line. No Ray setting turns this into a
Python error (`gcs_rpc_server_reconnect_timeout_s` only delays the same exit).

So the `dpsweep sweep` process the user started only supervises: it runs the same command
in a child (DPSWEEP_SWEEP_CHILD names a private folder) of its own process group, forwards
SIGINT, SIGTERM and SIGHUP to it (so a Ctrl-C reaches the child once, as the first Ctrl-C
of a sweep must: the child stops the trials in flight and exits 130), and returns the
child's exit code. The child notes its sweep id,
dataset, store and the cluster's GCS address in that folder as soon as it knows them, and
leaves an exit marker whenever it ends through dpsweep's own paths (any exit code). A child
that ends without the marker died abnormally: the parent prints one line (what is stored,
whether the cluster still answers, the exact resume command) and exits EXIT_CLUSTER_LOST.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

CHILD_ENV = "DPSWEEP_SWEEP_CHILD"
EXIT_CLUSTER_LOST = 6
_STATE, _EXITED = "state.json", "exited"
_PROBE_S = 10.0  # how long the parent watches the GCS port before saying the cluster still answers


def child_folder() -> Path | None:
    """The supervising parent's folder when this process is the sweep's child, else None."""
    value = os.environ.get(CHILD_ENV)
    return Path(value) if value else None


def note(**fields: str) -> None:
    """In a child: record what the parent needs to explain an abnormal end (merged into state.json)."""
    folder = child_folder()
    if folder is None:
        return
    path = folder / _STATE
    state = json.loads(path.read_text()) if path.is_file() else {}
    state.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


@contextlib.contextmanager
def exit_marker() -> Iterator[None]:
    """In a child: however the command leaves (return or exception), leave the marker behind."""
    try:
        yield
    finally:
        folder = child_folder()
        if folder is not None:
            (folder / _EXITED).touch()


def run_supervised(argv: Sequence[str], *, file: str, address: str, runs_dir: str) -> int:
    """Run `dpsweep <argv>` in a child and return its exit code; one line if it died abnormally."""
    folder = Path(tempfile.mkdtemp(prefix="dpsweep-sweep-"))  # 0700
    env = {**os.environ, CHILD_ENV: str(folder)}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    child: subprocess.Popen | None = None
    early: list[int] = []  # signals that came before the child existed

    def forward(signum: int, _frame) -> None:
        if child is None:
            early.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    for sig in previous:  # a handler, not SIG_IGN (which the child would inherit)
        signal.signal(sig, forward)
    try:
        # its own process group: a terminal's Ctrl-C reaches only this process, which forwards it once
        child = subprocess.Popen([sys.executable, "-m", "dpsweep.cli", *argv], env=env, process_group=0)
        for signum in early:
            forward(signum, None)
        code = child.wait()
        if (folder / _EXITED).exists():
            return code
        state = json.loads((folder / _STATE).read_text()) if (folder / _STATE).is_file() else {}
        print(abnormal_end_line(code, state, file=file, address=address, runs_dir=runs_dir),
              file=sys.stderr, flush=True)
        return EXIT_CLUSTER_LOST
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(folder, ignore_errors=True)


def abnormal_end_line(code: int, state: dict, *, file: str, address: str, runs_dir: str) -> str:
    """The one line for a driver that died without a word: how, whether the cluster answers,
    what is stored and how to resume."""
    how = f"signal {-code}" if code < 0 else f"exit {code}"
    gcs = state.get("gcs_address") or address
    answers = _answers(gcs)
    cluster = {False: f"the Ray cluster at {gcs} no longer answers (it stopped or is unreachable)",
               True: f"the Ray cluster at {gcs} still answers (the driver was killed or crashed)",
               None: f"the Ray cluster at {gcs} may have stopped"}[answers]
    head = f"dpsweep: error: the sweep's driver process ended abnormally ({how}); {cluster}"
    if "sweep_id" not in state:
        return f"{head}; the sweep had not started, nothing was stored; run the same command again"
    rows = _stored(state)
    command = resume_command(file, store=state["store"], sweep_id=state["sweep_id"], runs_dir=runs_dir,
                             address=address)
    when = "" if answers else "once the cluster is back, "
    return (f"{head}; {rows} trial(s) of sweep {state['sweep_id']} are stored in {state['store']} "
            f"(dataset {state['dataset']}); {when}resume with: {command}")


def resume_command(file: str, *, store: str, sweep_id: str, runs_dir: str, address: str | None) -> str:
    """The exact `dpsweep sweep ... --resume` that continues this sweep."""
    return shlex.join(["dpsweep", "sweep", file, "--store", store, "--name", sweep_id, "--runs-dir", runs_dir,
                       *(["--address", address] if address else []), "--resume"])


def _stored(state: dict) -> int | str:
    from dpsweep.results import ResultStore
    from dpsweep.sweep.runner import stored_rows

    try:
        return len(stored_rows(ResultStore(state["store"]), dataset=state["dataset"], sweep_id=state["sweep_id"]))
    except Exception:  # noqa: BLE001 - the line must still be printed; the store says why elsewhere
        return "an unknown number of"


def _answers(address: str) -> bool | None:
    """Whether HOST:PORT accepts TCP connections throughout _PROBE_S (a head being stopped
    closes its GCS port within seconds); None for 'auto' or an address that is not HOST:PORT."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    deadline = time.monotonic() + _PROBE_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                pass
        except OSError:
            return False
        time.sleep(0.5)
    return True
