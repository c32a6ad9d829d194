"""How far the scored checkpoint trained: recorded with the metrics, and a warning when the run
did not finish, so a ``last.pt`` of a killed run is never mistaken for the trained model."""
from __future__ import annotations

import warnings
from pathlib import Path

from stages.pretrain.checkpoint import Checkpoint


class UnfinishedRunWarning(UserWarning):
    """The checkpoint is an intermediate state of a run that did not reach its last step."""


def training_state(checkpoint: Checkpoint, path: Path) -> dict[str, object]:
    """``step``, ``total_steps``, ``epochs_done``, ``epochs_planned``, ``finished``; warns when unfinished."""
    state = {"step": checkpoint.step, "total_steps": checkpoint.total_steps, "epochs_done": checkpoint.epochs_done,
             "epochs_planned": checkpoint.epochs_planned, "finished": checkpoint.finished}
    if not checkpoint.finished:
        warnings.warn(f"{path} is not a finished run ({checkpoint.describe_progress()}): the scores are those of "
                      "a partly trained model; resume it with `ctglip pretrain CACHE -o RUN_DIR --resume` and "
                      "score RUN_DIR/final.pt", UnfinishedRunWarning, stacklevel=2)
    return state
