"""`make demo`: a DP trial (ε = 8) and a non-private trial side by side.

Writes a synthetic MIMIC-CXR corpus in the real on-disk layout (if absent), trains the
embedded MiniLM with DP-LoRA and without DP on the same split, and prints both results
with the trivial floors. Sized to finish in a few minutes on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

DEMO_SETTINGS = dict(dataset_format="mimic-cxr", max_length=128, batch_size=128, physical_batch_size=32,
                     max_epochs=4.0, rank=4, lora_layers=2, lr=5e-3, head_lr=0.3, clip=1.0, seed=0,
                     epsilon=8.0, delta=1e-5)


def main(argv: list[str] | None = None) -> int:
    from dpsweep.cli import _quiet_libraries

    _quiet_libraries()
    parser = argparse.ArgumentParser(prog="python -m dpsweep.demo", description=__doc__)
    parser.add_argument("--data", default="data/synth-mimic", help="corpus folder (written if absent)")
    parser.add_argument("--n", type=int, default=1500, help="studies in the synthetic corpus")
    args = parser.parse_args(argv)

    from dpsweep.bench.trials import compare_trials, markdown_table
    from dpsweep.data import write_synthetic
    from dpsweep.train import TrialConfig

    data = Path(args.data)
    if not data.exists():
        print(f"[dpsweep] writing a synthetic MIMIC-CXR corpus of {args.n} studies to {data}", file=sys.stderr)
        write_synthetic("mimic-cxr", data, n=args.n, seed=0)
    base = TrialConfig(data_path=str(data), **DEMO_SETTINGS)
    report = compare_trials(base, epsilons=(8.0, math.inf), baseline=False)
    print()
    print(f"dpsweep demo: {report['dataset']}, {report['n_train']} train / {report['n_val']} validation reports, "
          f"embedded MiniLM + LoRA, max length {base.max_length}")
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
