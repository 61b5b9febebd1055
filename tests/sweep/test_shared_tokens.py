"""A sweep reads and tokenises its corpus once; its trials never touch the data folder, and reuse
the frozen-layer states it computed once per depth."""

from __future__ import annotations

import shutil

import pytest

from dpsweep.results import ResultStore
from dpsweep.sweep.runner import inspect_sweep, run_sweep
from dpsweep.sweep.spec import load_spec


@pytest.mark.ray
@pytest.mark.slow(reason="a sweep with its data folder removed, about 35 s; tests/distributed/test_shared.py covers the tokens in CI")
def test_trials_train_from_the_shared_tokens_with_the_data_folder_gone(write_space, tmp_path, synth_mimic, capfd):
    data = tmp_path / "data"
    shutil.copytree(synth_mimic, data)
    from tests.sweep.conftest import tiny_space

    search = {**tiny_space("", "", store="")["search"], "method": {"dist": "choice", "values": ["lora", "head"]}}
    space = write_space(dataset={"name": "tiny-mimic", "format": "mimic-cxr", "path": str(data), "max_length": 32},
                        privacy={"epsilons": [8], "delta": 1e-5}, trials_per_target=2, search=search)
    spec, plan = inspect_sweep(load_spec(space))  # the driver reads the corpus here, once
    shutil.rmtree(data)  # a trial that read the corpus again would fail now
    messages: list[str] = []
    outcome = run_sweep(spec, plan, sweep_id="shared", store=ResultStore(spec.store), runs_dir=str(tmp_path / "runs"),
                        log=messages.append)
    rows = ResultStore(spec.store).read("tiny-mimic").to_pylist()
    assert outcome.rows_written == 2 and [r["status"] for r in rows] == ["completed", "completed"], rows
    once = [m for m in messages if m.startswith("tokenized once: ")]
    assert len(once) == 1 and f"{len(plan.corpus.train) + len(plan.corpus.val) + len(plan.corpus.test)} reports" in once[0]
    depths = [m for m in messages if m.startswith("computed frozen layers")]  # lora: layer 0; head: both
    assert len(depths) == 2 and "(depth 1) for the lora" in depths[0] and "(depth 2) for the head" in depths[1]
    trial_output = capfd.readouterr().err
    assert trial_output.count("reusing the sweep's tokenized corpus") == 2, trial_output[-2000:]
    assert trial_output.count("this trial reuses the sweep's frozen-layer states (depth") == 2, trial_output[-2000:]
