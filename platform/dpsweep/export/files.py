"""Write a folder or a file whole or not at all: build beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from dpsweep.errors import UserInputError


def check_folder_target(target: Path, *, force: bool, is_replaceable: Callable[[Path], bool]) -> None:
    """Refuse a target that is a file, or a non-empty folder (unless `force` and replaceable).

    `is_replaceable` says whether a non-empty folder may be replaced with force (a saved
    model may; a folder of someone's other files may not).
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise UserInputError(f"{target} exists and is a file, not a folder; pass a new folder path")
    if not any(target.iterdir()):
        return
    if not force:
        raise UserInputError(f"folder {target} exists and is not empty; pass a new folder, or force=True "
                             "(--force) to replace a model saved there")
    if not is_replaceable(target):
        raise UserInputError(f"folder {target} is not empty and holds no saved model, so even with force it "
                             "is not replaced; pass a new folder path")


@contextlib.contextmanager
def staged_folder(target: Path, *, force: bool) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `target`; on success it replaces `target`.

    Call `check_folder_target` first. On an exception the temporary folder is removed and
    `target` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        _replace_folder(staging, target, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_folder(staging: Path, target: Path, *, force: bool) -> None:
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.rename(staging, target)
        return
    if not force:  # appeared while we were writing
        raise UserInputError(f"folder {target} appeared while the model was written; pass a new folder")
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def check_file_target(target: Path, *, force: bool, suffixes: tuple[str, ...]) -> None:
    """Refuse an output file with another suffix, a folder, or an existing file unless `force`."""
    if target.suffix.lower() not in suffixes:
        raise UserInputError(f"output {target} must end in {' or '.join(suffixes)}; "
                             f"got {target.suffix or 'no suffix'}; pick one of those")
    if target.is_dir():
        raise UserInputError(f"output {target} is a folder; pass a file path ending in {' or '.join(suffixes)}")
    if target.exists() and not force:
        raise UserInputError(f"output {target} exists; pass another path, or --force (force=True) to replace it")


@contextlib.contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it atomically replaces `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}{target.suffix}"
    try:
        yield staging
        os.replace(staging, target)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
