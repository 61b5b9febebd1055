"""Importing dpsweep.privacy pulls in no Ray, transformers or peft (STYLE.md, rule 1)."""

from __future__ import annotations

import subprocess
import sys


def test_privacy_imports_without_heavy_dependencies():
    code = ("import sys, dpsweep.privacy, dpsweep.privacy.bench; "
            "print(sorted(m for m in ('ray', 'transformers', 'peft', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
