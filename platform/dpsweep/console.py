"""Terminal hygiene shared by the commands and the trial workers: quiet libraries, strict JSON.

Standard library only, so any layer (the CLI, a Ray trainable, a benchmark) can import it
without pulling torch or Ray, and without importing the CLI.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from typing import Any


def quiet_libraries() -> None:
    """Keep library chatter (progress bars, RNG notices) out of the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # dp-accounting drops RDP orders whose series does not converge (sound, slightly looser)
    # and says so through absl on every call
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")


def json_safe(value: Any) -> Any:
    """dpsweep's one JSON convention: ±inf and nan as the strings "inf", "-inf", "nan"; tuples as lists.

    Every JSON dpsweep writes (configs, ledgers, rows handed from trials to the driver,
    `--json` output) goes through here, and :func:`from_json_safe` reads it back.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def from_json_safe(value: Any) -> Any:
    """Inverse of :func:`json_safe` for values: "inf", "-inf" and "nan" become floats again."""
    if value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_safe(v) for v in value]
    return value
