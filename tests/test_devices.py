"""`--device auto|cpu|cuda[:N]`: auto picks what is visible; CUDA without a GPU is one line, exit 2."""

from __future__ import annotations

import pytest
import torch

from dpsweep.cli import main
from dpsweep.devices import resolve_device
from dpsweep.errors import UserInputError

NO_GPU = not torch.cuda.is_available()


def test_auto_and_cpu():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cpu" if NO_GPU else "cuda:0")


def test_bad_device_names_are_refused():
    with pytest.raises(UserInputError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


@pytest.mark.skipif(not NO_GPU, reason="checks the refusal on a machine without a visible GPU")
def test_cuda_without_a_gpu_is_bad_input(capsys):
    with pytest.raises(UserInputError, match="no CUDA GPU is visible"):
        resolve_device("cuda:1")
    assert main(["bench", "gpu", "--data", "unused"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
