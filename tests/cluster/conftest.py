"""Markers of the cluster tests (registered here: the root pytest config runs --strict-markers)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ray_local: starts and stops real Ray processes through cluster/local.sh (about 10-30 s); "
        "deselect with -m 'not ray_local'",
    )
