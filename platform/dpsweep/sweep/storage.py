"""Where a sweep's runs dir may live: any folder on one node, shared storage on several.

Ray Train keeps each multi-worker trial's checkpoints (which hold the privacy ledger the
trial's result is read back from) under the runs dir, and each completed trial saves its
model there; on a cluster of several nodes those are written by whichever node runs the
trial. A local folder would then be a different folder on every node: Ray requires shared
storage for multi-node training. Accepted: an s3:// or gs:// URI (or any other pyarrow
filesystem URI), or a local path the user declares shared (an NFS/EFS/Filestore mount at
the same path on every node) with `--shared-runs-dir` or `DPSWEEP_SHARED_RUNS_DIR=1`.
"""

from __future__ import annotations

import os

from dpsweep.errors import ConfigError

SHARED_ENV = "DPSWEEP_SHARED_RUNS_DIR"


def declared_shared(flag: bool = False) -> bool:
    """True when the user said the runs dir is a shared mount (flag, or the environment variable)."""
    return flag or os.environ.get(SHARED_ENV, "").strip().lower() in ("1", "true", "yes")


def check_runs_dir(runs_dir: str, *, nodes: int, shared: bool) -> None:
    """Refuse a node-local runs dir on a cluster of more than one node (ConfigError, one line)."""
    if nodes <= 1 or "://" in runs_dir or shared:
        return
    raise ConfigError(
        f"--runs-dir {runs_dir} is a local folder but the Ray cluster has {nodes} nodes: trials on other nodes "
        "would write checkpoints (with the privacy ledger) and models to their own disks. Pass --runs-dir "
        f"s3://BUCKET/runs or gs://BUCKET/runs, or put it on a mount every node shares at the same path and add "
        f"--shared-runs-dir (or set {SHARED_ENV}=1)")


def alive_nodes() -> int:
    """How many nodes the connected Ray cluster has now (call after ray.init)."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))
