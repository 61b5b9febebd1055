"""Importing dpsweep.privacy pulls in no Ray, transformers, peft or training code (STYLE.md, rule 1)."""

from __future__ import annotations

import subprocess
import sys


def test_privacy_imports_without_heavy_dependencies():
    code = ("import sys, dpsweep.privacy, dpsweep.privacy.bench; "
            "print(sorted(m for m in ('ray', 'transformers', 'peft', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_accounting_modules_import_without_training_code_or_ray():
    code = ("import sys, dpsweep.privacy.pld, dpsweep.privacy.group, dpsweep.privacy.tuning; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m.startswith('dpsweep.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
