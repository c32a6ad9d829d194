"""``--shard K/N``: N processes (GPUs, nodes, a SLURM array) share one output folder, each taking
every N-th item. One parser and one set of checks for every stage that shards."""
from __future__ import annotations

from stages.common.errors import SetupError


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)`` with a clear error for anything else."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError as error:
        raise SetupError(f"shard {text!r} is invalid: use K/N, e.g. 1/2") from error
    return k, n


def check_shard(shard: tuple[int, int], overwrite: bool = False) -> None:
    """Refuse K outside 1..N, and ``--overwrite`` with N > 1 (shards would delete each other's work)."""
    k, n = shard
    if not (1 <= k <= n):
        raise SetupError(f"shard {k}/{n} is invalid: use K/N with 1 <= K <= N")
    if n > 1 and overwrite:
        raise SetupError("--overwrite cannot be combined with --shard (shards would delete each other's "
                         "work): redo the folder with one process, or delete it first")
