"""Checkpoints are data, not code: every load is `torch.load(..., weights_only=True)`.

A Lightning checkpoint of a PertDiT model holds tensors, numbers, strings and containers of them (weights,
optimiser and scheduler states, callback states, hyper-parameters as plain dicts): torch's weights-only
unpickler reads all of it. A run folder from a colleague therefore cannot run code when it is loaded; a file
that holds anything else (a pickled function or class) is refused with `CheckpointError`.

`SAFE_GLOBALS` is the allow-list of Python types beyond torch's own weights-only set that PertDiT
checkpoints need: none today (every model's checkpoint was checked with
`torch.serialization.get_unsafe_globals_in_checkpoint`; `tests/test_checkpoints.py` keeps checking). If a
checkpoint ever needs a type, add that type here; never switch `weights_only` off.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pertdit.errors import PertDiTError

#: Python types, beyond torch's weights-only defaults, that a PertDiT checkpoint may hold
SAFE_GLOBALS: tuple[Any, ...] = ()
#: the name of the checkpoint rewritten at the end of every epoch (callbacks.last_checkpoint)
LAST = "last.ckpt"


class CheckpointError(PertDiTError, ValueError):
    """A checkpoint is missing, unreadable, or holds objects that could run code when loaded."""


@contextlib.contextmanager
def safe_loading() -> Iterator[None]:
    """Within this block, weights-only loads (ours and Lightning's) also accept `SAFE_GLOBALS`."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        yield


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at `path` as a dict, read with `weights_only=True`; `CheckpointError` naming the file
    (and the refused objects) when it is missing, unreadable or holds code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_loading():
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _unsafe_globals(path)
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects that could run code when loaded "
            f"({', '.join(refused) or err}); PertDiT loads checkpoints as data only (weights_only=True). "
            "Use a checkpoint written by `pertdit train`; if you made this file yourself and trust it, "
            "save its tensors alone (torch.save({'state_dict': model.state_dict()}, FILE)) and load that"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"cannot read checkpoint {path} ({err}); it may be truncated (an interrupted "
                              "copy or save): use another checkpoint of the run") from None


def check_checkpoint(path: str | Path) -> Path:
    """`path` if it loads as data only (see `load_checkpoint`), before Lightning is given it."""
    load_checkpoint(path)
    return Path(path)


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - only used to enrich the error message
        return []


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """The best checkpoint of a run (as recorded by the best-checkpoint callback in last.ckpt), else
    last.ckpt, else the newest checkpoint; None when the run has none."""
    folder = Path(run_dir) / "checkpoints"
    found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not found:
        return None
    last = folder / LAST
    if not last.is_file():
        return found[-1]
    for key, value in load_checkpoint(last).get("callbacks", {}).items():
        best = value.get("best_model_path") if key.startswith("ModelCheckpoint") else None
        if best and (folder / Path(best).name).is_file():
            return folder / Path(best).name
    return last


def resume_checkpoint(ckpt_path: str | Path | None, run_dir: str | Path) -> str | None:
    """The checkpoint file to resume from: `ckpt_path` itself, a run folder's `checkpoints/last.ckpt`, or
    "last" for this run's own; None for a fresh start. Checked to load as data only."""
    if ckpt_path in (None, ""):
        return None
    path = Path(run_dir) / "checkpoints" / LAST if str(ckpt_path) == "last" else Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / LAST if (path / "checkpoints").is_dir() else path / LAST
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from at {path}; a run folder of `pertdit train` "
                              f"keeps checkpoints/{LAST} (rewritten at the end of every epoch)")
    return str(check_checkpoint(path))
