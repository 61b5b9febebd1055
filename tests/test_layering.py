"""Layering (STYLE.md rule 1): light layers import without torch, Ray or the CLI.

Each check runs in a fresh interpreter, since the test process itself has torch loaded.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import dpsweep
from dpsweep.results.store import ResultStore
from tests.results.conftest import _row

HEAVY = ("torch", "opacus", "transformers", "peft", "ray", "optuna")
TIMEOUT_S = 180  # a fresh interpreter on a busy 2-core box

# Records, for each watched module, the module whose code first imported it.
_SPY = """
import importlib.abc, json, sys
first_importer = {}
class _Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("torch", "opacus") and name not in first_importer:
            frame = sys._getframe(1)
            while frame and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
                frame = frame.f_back
            first_importer[name] = frame.f_globals.get("__name__") if frame else None
        return None
sys.meta_path.insert(0, _Spy())
"""


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run([sys.executable, "-c", _SPY + code], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded(names: tuple[str, ...]) -> str:
    return f"sorted(m for m in {names!r} if m in sys.modules)"


def test_results_and_privacy_import_no_training_code_or_ray():
    out = _fresh(f"""
import dpsweep.results
after_results = {_loaded(HEAVY + ("scipy",))}
import dpsweep.privacy
print(json.dumps({{"after_results": after_results,
                  "absent": {_loaded(("dpsweep.train", "dpsweep.sweep", "dpsweep.sweep.runner",
                                      "dpsweep.model", "dpsweep.cli", "ray", "transformers", "peft",
                                      "optuna"))},
                  "dpsweep": sorted(m for m in sys.modules if m.startswith("dpsweep")),
                  "first_importer": first_importer}}))
""")
    assert out["after_results"] == []
    assert out["absent"] == []
    allowed = ("dpsweep", "dpsweep.errors", "dpsweep.results", "dpsweep.privacy")
    assert [m for m in out["dpsweep"] if not m.startswith(allowed)] == []
    # Opacus' accountants live in the `opacus` package, whose __init__ imports the
    # PrivacyEngine and so torch: that is the one way torch may arrive here.
    assert out["first_importer"].get("opacus", "").startswith("dpsweep.privacy")
    assert out["first_importer"].get("torch", "opacus").startswith("opacus")


def test_light_modules_of_heavy_packages_import_without_torch():
    out = _fresh(f"""
import dpsweep.settings, dpsweep.train.plan, dpsweep.sweep.spec, dpsweep.sweep.plan
from dpsweep.model import LoraSettings, resolve_model_path
from dpsweep.sweep import SweepSpec, load_spec, plan_sweep
from dpsweep.train import TrialConfig, plan_steps
print(json.dumps({{"loaded": {_loaded(HEAVY + ("numpy",))}}}))
""")
    assert out["loaded"] == []


@pytest.mark.parametrize("package", ["dpsweep.train", "dpsweep.sweep", "dpsweep.model"])
def test_lazy_packages_keep_every_public_name(package):
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def test_lazy_name_is_the_submodules_object():
    from dpsweep.train import loop, run_trial

    assert run_trial is loop.run_trial


@pytest.fixture(scope="module")
def store_100(tmp_path_factory) -> Path:
    """A store of 100 trials, one Parquet file each as a sweep writes them."""
    root = tmp_path_factory.mktemp("layering") / "store"
    store = ResultStore(root)
    targets = (1.0, 2.0, 4.0, 8.0, math.inf)
    for i in range(100):
        target = targets[i % len(targets)]
        private = math.isfinite(target)
        store.append(_row(private=private, trial_id=f"t{i:04d}", epsilon_target=target,
                          epsilon=target * (0.8 + 0.002 * i) if private else math.inf,
                          weighted_f1=0.5 + 0.004 * i, macro_f1=0.4 + 0.003 * i))
    return root


def test_cli_query_commands_import_no_heavy_library(store_100, tmp_path):
    store = str(store_100)
    out = _fresh(f"""
import contextlib, io
from dpsweep.cli import build_parser, main
build_parser()
codes = []
runs = [["pareto", "--store", {store!r}, "--dataset", "mimic-cxr", "--format", "json"],
        ["best", "--store", {store!r}, "--dataset", "mimic-cxr", "--max-epsilon", "4"],
        ["report", "--store", {store!r}, "--out", {str(tmp_path / "report")!r}],
        ["--help"]]
for argv in runs:
    with contextlib.redirect_stdout(io.StringIO()) as text, contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(exc.code)
    if argv[0] == "pareto":
        front = json.loads(text.getvalue())["front"]
print(json.dumps({{"codes": codes, "front": len(front), "loaded": {_loaded(HEAVY)}}}))
""")
    assert out["codes"] == [0, 0, 0, 0]
    assert out["front"] >= 2
    assert out["loaded"] == []


def test_no_package_module_imports_the_cli():
    package = Path(dpsweep.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "cli.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "dpsweep.cli" for n in names) or (
                    isinstance(node, ast.ImportFrom) and node.module == "dpsweep"
                    and any(a.name == "cli" for a in node.names)):
                offenders.append(str(path.relative_to(package)))
    assert offenders == []
