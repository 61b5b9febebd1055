"""The CLI: bad input exits 2 with one line naming the problem and the fix."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import CT_CLIP_TEXT

# Every test here starts `python -m dpsweep.cli` (about 5-10 s each on 2 CPUs: the CLI imports torch).
pytestmark = pytest.mark.cli_subprocess


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dpsweep.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def good(tiny_model_dir, synth_mimic) -> list[str]:
    return ["train", "--dataset-format", "mimic-cxr", "--data-path", str(synth_mimic),
            "--model", str(tiny_model_dir), "--max-length", "32", "--max-epochs", "0.3", "--rank", "2",
            "--accountant", "rdp"]


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


BAD = [
    ("--data-path", "/no/such/dir", "/no/such/dir"),
    ("--dataset-format", "dicom", "dicom"),
    ("--epsilon", "0", "epsilon"),
    ("--epsilon", "-3", "epsilon"),
    ("--delta", "0.5", "delta"),
    ("--delta", "0", "delta"),
    ("--sigma", "0", "sigma"),
    ("--clip", "-1", "clip"),
    ("--rank", "0", "rank"),
    ("--model", "/no/such/model", "/no/such/model"),
]


@pytest.mark.parametrize("flag,value,named", BAD)
def test_bad_input_exits_2_with_one_line(good, flag, value, named):
    proc = run_cli(*_replace(good, flag, value))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert named in lines[0] and "Traceback" not in proc.stderr


def test_store_is_checked_before_any_data_is_read(tmp_path):
    """A store path that is a file: exit 2 naming it, before the (missing) data is looked at."""
    (tmp_path / "store").write_text("")
    proc = run_cli("train", "--dataset-format", "mimic-cxr", "--data-path", str(tmp_path / "no-data"),
                   "--store", str(tmp_path / "store"), "--epsilon", "8")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "is a file" in proc.stderr
    assert "no-data" not in proc.stderr and "Traceback" not in proc.stderr


def test_missing_label_columns_exit_2(tmp_path, good):
    folder = tmp_path / "csvdata"
    folder.mkdir()
    (folder / "train.csv").write_text("id,report_text\n1,secret words here\n2,more secret words\n")
    proc = run_cli(*_replace(_replace(good, "--dataset-format", "csv"), "--data-path", str(folder)))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "secret" not in proc.stderr


def test_delta_above_one_over_n_refused(good):
    proc = run_cli(*_replace(good, "--delta", "0.01"))  # 300 synthetic studies: 1/n is about 0.004
    assert proc.returncode == 2 and "delta" in proc.stderr


def test_train_json_has_the_documented_fields(good):
    proc = run_cli(*good, "--epsilon", "8", "--sigma", "1.0", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    for key in ["weighted_f1", "macro_f1", "micro_f1", "per_label_f1", "auroc_macro", "epsilon",
                "epsilon_target", "delta", "sigma", "clip", "sample_rate", "steps", "accountant",
                "train_seconds", "n_train", "n_val", "test_weighted_f1", "test_macro_f1"]:
        assert key in out, key
    assert out["epsilon"] <= 8 and out["accountant"] == "rdp"
    assert "step " in proc.stderr  # progress lines


def test_non_private_json_is_strict_json(good):
    proc = run_cli(*good, "--epsilon", "inf", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert out["epsilon"] == "inf" and math.isinf(float(out["epsilon"]))


def test_data_inspect_never_prints_text(synth_mimic):
    proc = run_cli("data", "inspect", "--format", "mimic-cxr", "--path", str(synth_mimic), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "FINDINGS" not in proc.stdout and "effusion." not in proc.stdout.lower()
    json.loads(proc.stdout)


@pytest.mark.skipif(not (CT_CLIP_TEXT / "train.csv").is_file(), reason="../shared/datasets/ct-clip-text absent")
def test_inspect_real_ct_reports_counts_only():
    proc = run_cli("data", "inspect", "--format", "csv", "--path", str(CT_CLIP_TEXT))
    assert proc.returncode == 0, proc.stderr
    assert "Emphysema" in proc.stdout and "Trachea" not in proc.stdout
