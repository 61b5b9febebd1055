"""Which torch device a trial or a prediction runs on: `--device auto|cpu|cuda[:N]`.

`auto` takes the GPU this process can see (for a one-worker Ray trial, the one Ray
assigned it through CUDA_VISIBLE_DEVICES, which torch calls cuda:0), else the CPU.
Asking for CUDA where none is visible is bad input: one line, exit 2.
"""

from __future__ import annotations

import re

from dpsweep.errors import UserInputError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(requested: str = "auto") -> str:
    """A concrete device name ("cpu", "cuda:0", ...) for `requested`."""
    import torch

    requested = (requested or "auto").strip().lower()
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    match = _CUDA.fullmatch(requested)
    if match is None:
        raise UserInputError(f"--device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if not torch.cuda.is_available():
        raise UserInputError(f"--device {requested}: no CUDA GPU is visible to torch (torch {torch.__version__}, "
                             "CUDA build: " + ("yes" if torch.version.cuda else "no") + "); pass --device cpu, or "
                             "install the CUDA build of torch (README: Install on a GPU machine)")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise UserInputError(f"--device {requested}: only {torch.cuda.device_count()} GPU(s) visible; "
                             f"pass --device cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{index}"
