"""Run a sweep: for each ε target an Optuna-driven Ray Tune search; rows into the store.

The results store is the sweep's source of truth. `--resume` reads the rows a sweep has
already written, gives their (params, score) to a fresh Optuna sampler, and runs only
the trials still missing, so an interrupted sweep continues without losing or
duplicating rows (trials that were in flight when the driver died are run again).

SIGINT (Ctrl-C) stops the sweep where it can stop cleanly: the trials in flight are
stopped, the rows already written stay, and :class:`SweepInterrupted` tells the caller.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dpsweep.errors import ConfigError
from dpsweep.sweep.plan import SweepPlan, plan_sweep
from dpsweep.sweep.spec import Param, SweepSpec

Log = Any


class SweepInterrupted(Exception):
    """SIGINT stopped the sweep; the rows written so far are in the store.

    An Exception (not KeyboardInterrupt) so that Ray Tune, which it unwinds, stops its trials.
    """


@dataclass
class SweepOutcome:
    sweep_id: str
    store: str
    dataset: str
    rows_written: int
    seconds: float
    progress: Any  # SweepProgress


def inspect_sweep(spec: SweepSpec) -> tuple[SweepSpec, SweepPlan]:
    """Check model and data (reading the corpus once, in the driver) and plan every target.

    Raises UserInputError before any Ray resource is used. Relative data and model paths
    become absolute, since Tune trials run in their own working directories.
    """
    from dpsweep.model import resolve_model_path
    from dpsweep.preflight import check_trial_model
    from dpsweep.privacy import validate_privacy_args
    from dpsweep.train.loop import load_trial_corpus, training_units

    base = spec.base
    resolve_model_path(base.model)
    check_trial_model(base, source=spec.source)  # config.json only: before the corpus is read
    if "://" not in base.data_path:
        base = base.override(data_path=str(Path(base.data_path).expanduser().resolve()))
    if base.public_path is not None and "://" not in base.public_path:
        base = base.override(public_path=str(Path(base.public_path).expanduser().resolve()))
    if base.model != "default" and Path(base.model).exists():
        base = base.override(model=str(Path(base.model).resolve()))
    t0 = time.perf_counter()
    corpus = load_trial_corpus(base)
    read_seconds = time.perf_counter() - t0
    from dpsweep.train.methods import load_public_corpus

    load_public_corpus(base, label_names=corpus.label_names)  # a missing or mislabelled public corpus: now
    n_units = training_units(base.override(epsilon=min(spec.epsilons)), corpus)
    for eps in spec.epsilons:
        validate_privacy_args(epsilon_target=eps, delta=base.delta, n_train=n_units,
                              sigma=None, clip=base.clip)
    spec = replace(spec, base=base)
    dataset = spec.dataset_name or corpus.name
    from dpsweep.results.validate import check_dataset_name

    try:
        check_dataset_name(dataset)
    except ValueError as exc:
        raise ConfigError(f"{spec.source}: dataset.name: {exc}") from None
    plan = plan_sweep(spec, n_train=n_units, n_val=len(corpus.val), dataset=dataset)
    return spec, replace(plan, corpus=corpus, read_seconds=read_seconds)


def default_sweep_id(spec: SweepSpec) -> str:
    return f"{spec.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def default_id_pattern(spec_name: str) -> re.Pattern[str]:
    """Sweep ids `default_sweep_id` gives a spec: its name, '-', a UTC time (nothing else)."""
    return re.compile(re.escape(spec_name) + r"-\d{8}-\d{6}")


def stored_rows(store, *, dataset: str, sweep_id: str | None = None,
                pattern: re.Pattern[str] | None = None) -> list[dict]:
    """Rows of one sweep (or of every sweep whose id matches `pattern` in full) in the store."""
    import pyarrow.compute as pc

    if dataset not in store.datasets():
        return []
    table = store.read(dataset)
    if sweep_id is not None:
        table = table.filter(pc.equal(table["sweep_id"], sweep_id))
    rows = table.to_pylist()
    return [r for r in rows if pattern.fullmatch(r["sweep_id"])] if pattern is not None else rows


def resolve_sweep_id(spec: SweepSpec, store, *, dataset: str, name: str | None, resume: bool) -> str:
    """The sweep_id: --name, or the spec name plus a UTC time; --resume finds the latest one."""
    if resume and name is None:
        rows = stored_rows(store, dataset=dataset, pattern=default_id_pattern(spec.name))
        if not rows:
            raise ConfigError(f"--resume: no sweep of '{spec.name}' in store {store.uri} for dataset {dataset}; "
                              "run it without --resume first, or pass --name of the sweep to continue")
        return max(rows, key=lambda r: r["started_at"])["sweep_id"]
    sweep_id = name or default_sweep_id(spec)
    if not resume and stored_rows(store, dataset=dataset, sweep_id=sweep_id):
        raise ConfigError(f"sweep '{sweep_id}' already has rows in store {store.uri}; pass --resume to "
                          "continue it, or --name NEW_NAME for a new sweep")
    return sweep_id


def epsilon_tag(eps: float) -> str:
    """ε as it appears in trial ids and Tune folder names: exact, and valid under the store's id rule.

    Short (`8`, `0.1`, `inf`) where `:g` is exact, else the shortest exact form; the exponent's
    '+' (which the id rule refuses: `1e+12`) is dropped, so `float(epsilon_tag(e)) == e`.
    """
    if math.isinf(eps):
        return "inf"
    short = f"{eps:g}"
    return (short if float(short) == eps else repr(eps)).replace("e+", "e")


def trial_prefix(eps: float, n_previous: int) -> str:
    """Start of the ids of one target's trials (Tune's trial id follows); distinct across resumed runs."""
    return f"eps{epsilon_tag(eps)}-{n_previous}"


def run_sweep(spec: SweepSpec, plan: SweepPlan, *, sweep_id: str, store, address: str | None = None,
              runs_dir: str = "runs/sweeps", log=None, runs_dir_shared: bool = False) -> SweepOutcome:
    """Run every ε target of an inspected spec on Ray; returns counts and timings.

    On a cluster of several nodes `runs_dir` must be shared storage (see sweep/storage.py);
    `runs_dir_shared` declares a local path to be a mount every node shares.
    """

    from dpsweep.sweep.callbacks import SweepProgress
    from dpsweep.sweep.callbacks import log as default_log

    log = log or default_log
    started = time.perf_counter()
    existing = stored_rows(store, dataset=plan.dataset, sweep_id=sweep_id)
    wanted = _trial_counts(spec, existing, log)
    # A failed trial (its worker or the cluster died) trained nothing that was kept: run it again.
    done = [r for r in existing if r["status"] in ("completed", "infeasible")]
    todo = {eps: wanted[eps] - sum(1 for r in done if r["epsilon_target"] == eps) for eps in spec.epsilons}
    progress = SweepProgress(total=sum(max(n, 0) for n in todo.values()))
    if existing:
        failed = len(existing) - len(done)
        log(f"resuming sweep {sweep_id}: {len(existing)} rows already stored"
            f"{f' ({failed} failed, run again)' if failed else ''}, {progress.total} trials to run")
    runs = str(Path(runs_dir).resolve()) if "://" not in runs_dir else runs_dir
    with _stop_on_sigint(progress, log), _ray_session(address, log), _prefix_cache_removed(runs, sweep_id):
        from dpsweep.sweep.storage import alive_nodes, check_runs_dir, declared_shared

        check_runs_dir(runs_dir, nodes=alive_nodes(), shared=declared_shared(runs_dir_shared))  # before any trial
        _check_capacity(spec, log)
        from dpsweep.distributed.shared import tokenize_and_share

        shared = (tokenize_and_share(spec.base, plan.corpus, log=log, keep_texts=_trials_may_need_texts(spec))
                  if progress.total else None)
        prefix_ref = (_shared_prefix(spec, plan, shared.get(), log, runs_dir=runs, sweep_id=sweep_id,
                                     targets=[eps for eps in spec.epsilons if todo[eps] > 0],
                                     runs_dir_shared=declared_shared(runs_dir_shared))
                      if progress.total else None)
        warm_ref = (_shared_warm(spec, plan, shared.get(), log, prefix_ref=prefix_ref,
                                 targets=[eps for eps in spec.epsilons if todo[eps] > 0])
                    if progress.total else None)
        for eps in spec.epsilons:
            _raise_if_interrupted(progress)
            if todo[eps] <= 0:
                log(f"ε={epsilon_tag(eps)}: all {wanted[eps]} trials already stored")
                continue
            _run_target(spec, plan, eps=eps, trials=todo[eps], sweep_id=sweep_id, store=store,
                        previous=[r for r in existing if r["epsilon_target"] == eps], runs_dir=runs,
                        progress=progress, log=log, prefix_ref=prefix_ref, wanted=wanted[eps], shared=shared,
                        warm_ref=warm_ref)
        _raise_if_interrupted(progress)
        if spec.tuning is not None:
            _release_best(spec, store, plan.dataset, sweep_id, log)
    written = len(stored_rows(store, dataset=plan.dataset, sweep_id=sweep_id)) - len(existing)
    return SweepOutcome(sweep_id, store.uri, plan.dataset, written, time.perf_counter() - started, progress)


def _trials_may_need_texts(spec: SweepSpec) -> bool:
    """Whether some trial may tokenise otherwise than the base config (then the texts are shared too)."""
    searched = {p.key for p in spec.params}
    return getattr(spec.base, "method", "lora") == "linear" or bool(searched & {"model", "max_length", "method"})


def _trial_counts(spec: SweepSpec, existing: list[dict], log) -> dict[float, int]:
    """Trials per target: trials_per_target, or (random stopping) K drawn once per target and
    kept in the rows, so a resumed sweep runs the same K."""
    if spec.tuning is None:
        return {eps: spec.trials_per_target for eps in spec.epsilons}
    from dpsweep.sweep.release import draw_trials

    counts = {}
    for eps in spec.epsilons:
        stored = [r["tuning_trials"] for r in existing if r["epsilon_target"] == eps and r.get("tuning_trials")]
        counts[eps] = int(stored[0]) if stored else draw_trials(spec.tuning)
        log(f"ε={epsilon_tag(eps)}: random stopping drew {counts[eps]} trial(s) ({spec.tuning.distribution}, mean "
            f"{spec.tuning.mean_trials:g}){'; nothing will be released for this target' if not counts[eps] else ''}")
    return counts


def _release_best(spec: SweepSpec, store, dataset: str, sweep_id: str, log) -> None:
    """Random stopping: mark the best trial of each target released (the only model to ship)."""
    from dpsweep.sweep.release import mark_released

    rows = stored_rows(store, dataset=dataset, sweep_id=sweep_id)
    for eps in spec.epsilons:
        best = mark_released(store, [r for r in rows if r["epsilon_target"] == eps])
        if best is not None:
            release = best.get("epsilon_release")
            log(f"ε={epsilon_tag(eps)}: released trial {best['trial_id']}"
                + (f" (ε of the release, tuning included: {release:.4g})" if release is not None else ""))


def _check_capacity(spec: SweepSpec, log) -> None:
    """Say so when one trial asks for more than the cluster has (an autoscaler may add it)."""
    import ray

    r = spec.resources
    need_cpu = r.workers_per_trial * r.cpus_per_worker + (0.1 if r.workers_per_trial > 1 else 0)
    need_gpu = r.workers_per_trial * r.gpus_per_worker
    have = ray.cluster_resources()
    if need_cpu > have.get("CPU", 0) or need_gpu > have.get("GPU", 0):
        log(f"warning: one trial needs {need_cpu:g} CPU / {need_gpu:g} GPU but the cluster has "
            f"{have.get('CPU', 0):g} CPU / {have.get('GPU', 0):g} GPU now; trials wait until an "
            "autoscaler adds nodes. Lower resources.* in the search space if none will come")


def prefix_depths(spec: SweepSpec, plan: SweepPlan, *, targets: list[float], num_layers: int) -> dict[int, tuple]:
    """{depth: (a config of that depth, the methods it serves)} for what the searched trials may cache.

    Every method (and `lora_layers`) value a target still to run may search, on its base: head
    caches all `num_layers` layers, lora and bitfit with `lora_layers` k the n - k below the
    adapted ones, linear (or `prefix_cache` off) none. Depths no trial can use are not listed.
    """
    from itertools import product

    from dpsweep.train.methods import frozen_depth

    found: dict[int, tuple] = {}
    for eps in targets:
        base = spec.base_for(eps)
        params = {p.key: p for p in next(t for t in plan.targets if t.epsilon == eps).params}
        choices = {key: _values(params[key]) if key in params else [getattr(base, key)]
                   for key in ("method", "lora_layers")}
        for method, lora_layers in product(choices["method"], choices["lora_layers"]):
            config = base.override(method=method, lora_layers=lora_layers)
            depth = frozen_depth(config, num_layers=num_layers)
            if depth is None:
                continue
            label = method if method == "head" else f"{method} (lora_layers={lora_layers})"
            first, serves = found.get(depth, (config, ()))
            found[depth] = (first, serves if label in serves else (*serves, label))
    return dict(sorted(found.items()))


def _values(param: Param) -> list:
    """Every value a searched parameter may take (an int range in full; choices as given)."""
    if param.dist == "choice":
        return list(param.values)
    if param.dist == "int":
        return list(range(int(param.low), int(param.high) + 1))
    raise ConfigError(f"{param.key} is searched with dist {param.dist}; search it with choice or int")


def _shared_prefix(spec: SweepSpec, plan: SweepPlan, corpus, log, *, runs_dir: str, sweep_id: str,
                   targets: list[float], runs_dir_shared: bool = False):
    """Compute the frozen lower layers once per depth the sweep's trials need; a `SharedPrefix` or None.

    One store set per distinct depth (`prefix_depths`: e.g. head's all-layer features and
    lora's n - k layers when method is searched), each computed from the base config with
    that method. Together up to the in-memory budget they go to Ray's object store (shared
    memory); what is over it to memory-mapped files in `<runs_dir>/prefix-cache/<sweep_id>`
    (owner-only, deleted when the sweep ends; not on an s3:// or gs:// runs dir). One log line
    per depth says which methods it serves, how many reports, how long and where. Trials of
    one worker and every rank of a multi-worker trial take the stores of their own depth
    (`SharedPrefix.states_for`). Never in the results store.
    """
    from dpsweep.distributed.shared import PrefixShare, SharedPrefix
    from dpsweep.model import resolve_model_path
    from dpsweep.model.limits import model_config, model_shape
    from dpsweep.model.prefix import MEMORY_BUDGET_BYTES
    from dpsweep.train.loop import compute_prefix_states

    num_layers = model_shape(model_config(resolve_model_path(spec.base.model))).layers
    depths = prefix_depths(spec, plan, targets=targets, num_layers=num_layers) if num_layers else {}
    if not depths:
        return None
    folder = None if "://" in runs_dir else str(prefix_cache_folder(runs_dir, sweep_id))
    budget, shares = MEMORY_BUDGET_BYTES, []
    for depth, (config, serves) in depths.items():
        t0 = time.perf_counter()
        states, how = compute_prefix_states(config, corpus, folder=folder, max_bytes=budget)
        what = f"frozen layers 0..{depth - 1} (depth {depth}) for the {', '.join(serves)} trials"
        if states is None:
            log(f"{what} not computed for the sweep ({how}); each such trial runs every layer")
            continue
        if states[0].depth != depth:  # the model found another first adapted layer than frozen_depth
            log(f"warning: {what}: the model caches {states[0].depth} layers, not {depth}; not shared, "
                "those trials compute their own")
            continue
        budget -= sum(s.data.nbytes for s in states if s.path is None)
        shares.append(PrefixShare.put(states, serves=serves))
        log(f"computed {what} once ({shares[-1].n_reports} reports, {time.perf_counter() - t0:.1f} s): {how}")
    if not shares:
        return None
    if spec.resources.workers_per_trial > 1:
        log(_ranks_note(shares, runs_dir_shared=runs_dir_shared))
    return SharedPrefix(model=spec.base.model, num_layers=num_layers, shares=tuple(shares))


def shared_warm_config(spec: SweepSpec, plan: SweepPlan, *, targets: list[float]):
    """(the config whose warm start every trial still to run takes, "") or (None, why not)."""
    from dpsweep.sweep.trainable import config_for
    from dpsweep.train.methods import warm_start_key, warm_start_reads

    configs = []
    for eps in targets:
        config = config_for({}, _target_base(spec, plan, eps, 0)[0])
        if not config.public_warm_steps or config.public_path is None:
            return None, "no warm start"
        params = next(t for t in plan.targets if t.epsilon == eps).params
        read = [p.key for p in params if warm_start_reads(p.key, config)]
        if read:
            hint = (" (set training.public_warm_lr to warm up at a fixed lr)" if read == ["lr"] else "")
            return None, f"ε={epsilon_tag(eps)} searches {', '.join(read)}, which the warm start reads{hint}"
        configs.append(config)
    if not configs:
        return None, "no trial to run"
    if len({warm_start_key(c) for c in configs}) > 1:
        return None, "the targets' fixed settings give different warm starts"
    return configs[0], ""


def _shared_warm(spec: SweepSpec, plan: SweepPlan, corpus, log, *, prefix_ref, targets: list[float]):
    """Run the public warm start once when every trial would run the same one; a `SharedWarm` or None."""
    config, why_not = shared_warm_config(spec, plan, targets=targets)
    if config is None:
        if why_not != "no warm start":
            log(f"warm start: each trial runs its own ({why_not})")
        return None
    from dpsweep.distributed.shared import SharedWarm
    from dpsweep.train.loop import compute_warm_weights

    t0 = time.perf_counter()
    states = prefix_ref.states_for(config) if prefix_ref is not None else None
    weights = compute_warm_weights(config, corpus, prefix_states=states, log=lambda _m: None)
    if weights is None:
        return None
    shared = SharedWarm.put(config, weights, seconds=time.perf_counter() - t0)
    log(f"warm start: {config.public_warm_steps} non-private steps on the public corpus ({config.public_format} "
        f"{config.public_path}) computed once for every trial in {shared.seconds:.1f} s; no ε spent")
    return shared


def _ranks_note(shares: list, *, runs_dir_shared: bool) -> str:
    """What the ranks of multi-worker trials do with the shared states (for the sweep's log)."""
    mapped = [s for s in shares if s.paths]
    note = ("multi-worker trials: every rank takes its depth's states from Ray's object store (copied to a "
            "node once, mapped by every rank on it)")
    if not mapped:
        return note
    if runs_dir_shared:
        return note + "; the memory-mapped ones from the shared runs dir, on any node"
    return note + ("; the memory-mapped ones only on this node (the runs dir is not declared shared): "
                   "ranks on other nodes compute their own")


def prefix_cache_folder(runs_dir: str, sweep_id: str) -> Path:
    return Path(runs_dir) / "prefix-cache" / sweep_id


@contextlib.contextmanager
def _prefix_cache_removed(runs_dir: str, sweep_id: str) -> Iterator[None]:
    """Delete the sweep's memory-mapped frozen-layer states when it ends: they derive from reports."""
    try:
        yield
    finally:
        if "://" not in runs_dir:
            import shutil

            shutil.rmtree(prefix_cache_folder(runs_dir, sweep_id), ignore_errors=True)


def _raise_if_interrupted(progress) -> None:
    if progress.interrupted:
        raise SweepInterrupted("the sweep was interrupted (SIGINT)")


@contextlib.contextmanager
def _stop_on_sigint(progress, log) -> Iterator[None]:
    """The first SIGINT asks the sweep to stop (`progress.interrupted`, checked between Tune
    steps and targets); a second one stops it at once (KeyboardInterrupt).

    Tune's own handler is turned off: it would end the run as if it had finished.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_stop(_signum, _frame) -> None:
        if progress.interrupted:
            raise KeyboardInterrupt
        progress.interrupted = True
        _quiet_worker_stderr()
        log("interrupted: stopping the trials in flight (press Ctrl-C again to stop at once)")

    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    previous = signal.signal(signal.SIGINT, ask_to_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


class SigtermNoiseFilter:
    """Drops, from one worker's stderr lines, the block Ray's own SIGTERM handler leaves.

    Tune stops a finished or interrupted trial's actor with SIGTERM; Ray's handler raises
    SystemExit wherever the actor is, and inside a weakref callback Python prints
    "Exception ignored in: ... Traceback ... sigterm_handler ... SystemExit: 1". That block
    says nothing about the trial; any other traceback passes through whole. Lines of an open
    block are held until it ends (it may span Ray's log batches); at most `hold` lines.
    """

    def __init__(self, hold: int = 100):
        self.hold, self.held = hold, []

    def __call__(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            if not self.held:
                if line.startswith("Exception ignored in"):
                    self.held = [line]
                else:
                    out.append(line)
                continue
            self.held.append(line)
            ended = bool(line) and not line[0].isspace() and not line.startswith("Traceback (most recent")
            if ended:
                block, self.held = self.held, []
                if not (line.startswith("SystemExit") and any("sigterm_handler" in b for b in block)):
                    out.extend(block)
            elif len(self.held) > self.hold:
                out.extend(self.held)
                self.held = []
        return out


def _wrap_print_logs(wrap) -> None:
    """Replace Ray's console handler for worker output ("ray_print_logs") by wrap(handler).

    Ray's log dispatcher is private (ray._private); where it is missing, nothing changes. A
    timeout, not `with lock`: this may run in a signal handler while the main thread holds
    the lock (ray.shutdown removing the handler).
    """
    try:
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
    except ImportError:
        return
    lock = getattr(dispatcher, "_lock", None)
    if lock is None or not isinstance(getattr(dispatcher, "handlers", None), list):
        return
    if not lock.acquire(timeout=1.0):
        return
    try:
        dispatcher.handlers = [(name, wrap(handle) if name == "ray_print_logs" else handle)
                               for name, handle in dispatcher.handlers]
    finally:
        lock.release()


def _drop_ray_sigterm_tracebacks() -> None:
    """Worker stderr reaches the console without Ray's SIGTERM blocks (SigtermNoiseFilter)."""
    def wrap(handle):
        if getattr(handle, "dpsweep_sigterm_filter", False):
            return handle
        filters: dict = {}

        def handler(data):
            if data.get("is_err") and isinstance(data.get("lines"), list):
                lines = filters.setdefault(data.get("pid"), SigtermNoiseFilter())(data["lines"])
                if not lines:
                    return
                data = {**data, "lines": lines}
            handle(data)

        handler.dpsweep_sigterm_filter = True
        handler.dpsweep_stdout_only = getattr(handle, "dpsweep_stdout_only", False)
        return handler

    _wrap_print_logs(wrap)


def _quiet_worker_stderr() -> None:
    """From the interrupt on, Ray workers' stderr is no longer copied to this console.

    Stopping the trials SIGTERMs their actors; besides Ray's SIGTERM blocks (dropped by
    SigtermNoiseFilter all along) their shutdown may print more, which would bury the one
    line that says how to resume. A trial's own error is not lost: it is in the trial's row.
    Worker stdout (progress) still shows.
    """
    def wrap(handle):
        if getattr(handle, "dpsweep_stdout_only", False):
            return handle

        def handler(data):
            if not data.get("is_err"):
                handle(data)

        handler.dpsweep_stdout_only = True
        return handler

    _wrap_print_logs(wrap)


@contextlib.contextmanager
def _ray_session(address: str | None, log) -> Iterator[None]:
    """Ray for the sweep: the one already initialised, a cluster joined, or a private one
    (see dpsweep.sweep.private_ray) stopped afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address or os.environ.get("RAY_ADDRESS"):
        _connect(address, log)
        try:
            yield
        finally:
            ray.shutdown()
        return
    from dpsweep.sweep.private_ray import private_session

    with private_session(log) as session:
        _connect(None, log, temp_dir=str(session.folder))
        try:
            yield
        finally:
            ray.shutdown()


def _connect(address: str | None, log, *, temp_dir: str | None = None) -> None:
    """Join a cluster (--address, or RAY_ADDRESS under `ray job submit`) or start a local Ray
    in `temp_dir` (a private session folder)."""
    import logging

    import ray

    for name in ("ray.tune", "ray.train", "ray.air"):  # our callbacks print the progress that matters
        logging.getLogger(name).setLevel(logging.WARNING)
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _OneLineErrors) for f in controller.filters):
        controller.addFilter(_OneLineErrors())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's tables off: our callbacks report progress
    env = {"env_vars": {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_VERBOSITY",
                                                 "TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_PROGRESS_BARS")
                        if k in os.environ}}
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        log(f"joining Ray cluster at {target}")
        # cluster/local.sh keeps its session in DPSWEEP_RAY_TMP: 'auto' reads the address there
        temp_dir = os.environ.get("DPSWEEP_RAY_TMP") if target == "auto" else None
        ray.init(address=target, runtime_env=env, log_to_driver=_log_to_driver(),
                 **({"_temp_dir": temp_dir} if temp_dir else {}))
        from dpsweep.sweep.supervise import note

        note(gcs_address=ray.get_runtime_context().gcs_address)  # 'auto' resolved, for a supervising parent
        _drop_ray_sigterm_tracebacks()
        return
    cpus = os.cpu_count() or 1
    log(f"starting a local Ray instance ({cpus} CPUs)")
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, runtime_env=env,
             log_to_driver=_log_to_driver(), _temp_dir=temp_dir)
    _drop_ray_sigterm_tracebacks()


class _OneLineErrors:
    """Tune's "Trial task failed" as one line: its traceback (Ray internals, local paths) is
    dropped; the error itself is in the trial's failed row (short_error) and Ray's logs."""

    def filter(self, record) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(exc).__name__} (the trial's row holds the error)"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def _log_to_driver() -> bool:
    """Trial output (counts and metrics only, never report text) is shown unless RAY_LOG_TO_DRIVER=0."""
    return os.environ.get("RAY_LOG_TO_DRIVER", "1") != "0"


def tune_space(params: tuple[Param, ...]) -> dict[str, Any]:
    from ray import tune

    space = {}
    for p in params:
        if p.dist == "loguniform":
            space[p.key] = tune.loguniform(p.low, p.high)
        elif p.dist == "uniform":
            space[p.key] = tune.uniform(p.low, p.high)
        elif p.dist == "int":
            space[p.key] = tune.randint(int(p.low), int(p.high) + 1)
        else:
            space[p.key] = tune.choice(list(p.values))
    return space


def build_sampler(name: str, *, seed: int, trials: int):
    """An Optuna sampler by name (TPE by default), seeded."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 2)))
    classes = {"random": "RandomSampler", "gp": "GPSampler", "cmaes": "CmaEsSampler", "qmc": "QMCSampler",
               "nsgaii": "NSGAIISampler"}
    try:
        return getattr(optuna.samplers, classes[name])(seed=seed)
    except ImportError as exc:
        raise ConfigError(f"sampler {name!r} needs an extra package ({exc}); install it or use sampler: tpe") from None


def _previous_points(previous: list[dict], params: tuple[Param, ...]) -> tuple[list[dict], list[float]]:
    """(params, score) of stored trials, to warm-start Optuna on --resume (failed rows skipped)."""
    points, rewards = [], []
    for row in previous:
        if row["status"] not in ("completed", "infeasible"):
            continue
        config = json.loads(row["config_json"])
        points.append({p.key: config[p.key] for p in params})
        rewards.append(float(row["weighted_f1"]) if row["status"] == "completed" else 0.0)
    return points, rewards


def _target_base(spec: SweepSpec, plan: SweepPlan, eps: float, wanted: int) -> tuple[dict, dict]:
    """(base config, extra row columns) of one target's trials."""
    base = spec.base_for(eps)
    if spec.tuning is None:
        return base.to_dict(), {"epsilon_scope": "trial"}
    extra: dict[str, Any] = {"epsilon_scope": "trial", "tuning_trials": wanted, "released": 0}
    target = next(t for t in plan.targets if t.epsilon == eps)
    if target.release is not None:
        base = base.override(**target.release.trial_overrides())
        extra.update(epsilon_scope="release", epsilon_release=target.release.epsilon_release)
    return base.to_dict(), extra


def _run_target(spec: SweepSpec, plan: SweepPlan, *, eps: float, trials: int, sweep_id: str, store,
                previous: list[dict], runs_dir: str, progress, log, prefix_ref=None, wanted: int = 0,
                shared=None, warm_ref=None) -> None:
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from dpsweep.results.recovery import recovery_folder
    from dpsweep.sweep.callbacks import StoreCallback
    from dpsweep.sweep.trainable import METRIC, sweep_trial

    tag = epsilon_tag(eps)
    target = next(t for t in plan.targets if t.epsilon == eps)
    params = target.params  # σ narrowed to the range useful for this budget
    base, row_extra = _target_base(spec, plan, eps, wanted)
    r = spec.resources
    resources = {"workers_per_trial": r.workers_per_trial, "cpus_per_worker": r.cpus_per_worker,
                 "gpus_per_worker": r.gpus_per_worker}
    prefix = trial_prefix(eps, len(previous))
    trainable = tune.with_parameters(sweep_trial, base=base, sweep_id=sweep_id, trial_prefix=prefix,
                                     dataset_name=plan.dataset, resources=resources, runs_dir=runs_dir,
                                     prefix_ref=prefix_ref, row_extra=row_extra, shared=shared,
                                     warm_ref=warm_ref)
    if r.workers_per_trial == 1:
        trainable = tune.with_resources(trainable, {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker})
    else:  # the trial only drives a TorchTrainer; its workers hold the CPUs/GPUs
        trainable = tune.with_resources(trainable, {"cpu": 0.1})
    search = None
    if params:
        index = spec.epsilons.index(eps)
        points, rewards = _previous_points(previous, params)
        search = OptunaSearch(metric=METRIC, mode="max",
                              sampler=build_sampler(spec.sampler, seed=spec.seed + index,
                                                    trials=spec.trials_per_target),
                              points_to_evaluate=points or None, evaluated_rewards=rewards or None)
    callback = StoreCallback(store=store, sweep_id=sweep_id, trial_prefix=prefix, epsilon=eps, base=base,
                             dataset=plan.dataset, progress=progress, row_extra=row_extra,
                             recovery_dir=recovery_folder(runs_dir))
    log(f"ε={tag}: {trials} trials over {', '.join(p.key for p in params) or 'fixed settings'}")
    tuner = tune.Tuner(
        trainable, param_space=tune_space(params),
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=search, num_samples=trials,
                                    max_concurrent_trials=r.max_concurrent_trials, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{sweep_id}-{prefix}", storage_path=runs_dir,
                                  callbacks=[callback], verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)))
    try:
        grid = tuner.fit()
    except Exception:
        _raise_if_interrupted(progress)  # Tune stopped because SIGINT asked it to
        raise
    _raise_if_interrupted(progress)
    _reconcile(grid, callback)


def _reconcile(grid, callback) -> None:
    """Write any finished trial the callback missed (e.g. a crash between report and callback)."""
    from dpsweep.sweep.trainable import row_from_json

    for result in grid:
        metrics = result.metrics or {}
        if "row_json" in metrics:
            callback.write_row(row_from_json(metrics["row_json"]))
