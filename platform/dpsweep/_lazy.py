"""Lazy package exports (PEP 562): a package's public names, each imported on first use.

`dpsweep.train`, `dpsweep.sweep` and `dpsweep.model` re-export names from submodules that
import torch, Ray or transformers. Importing them eagerly in ``__init__`` made every light
sibling (``dpsweep.train.plan``, ``dpsweep.sweep.spec``) and every ``--help`` pay for
torch; with these hooks only the submodule that defines the name asked for is imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each submodule
    (relative name, e.g. ``"loop"``, or an absolute ``"dpsweep.x"``) to the public names it defines.

    The value is looked up on the submodule at every access rather than cached in the
    package, so a name first read while a test patches its submodule is not frozen there.
    """
    where = {name: module if module.startswith("dpsweep.") else f"{package}.{module}"
             for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__


def export_names(exports: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The package's ``__all__``: every exported name, sorted."""
    return sorted(name for names in exports.values() for name in names)
