"""Stage manifests: the contract between stages.

Every stage writes ``manifest.json`` beside its outputs: which stage ran, ctglip and
upstream versions, the resolved config and its hash, and a status per item. The next
stage reads it with :func:`read_manifest`, which names the command to run when it is
missing or does not fit (as nnU-Net's plans/fingerprint checks do).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from stages import __version__
from stages.common.atomic import write_json_atomic
from stages.common.errors import SetupError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "ctglip.manifest/1"
STAGE_COMMANDS = {
    "ingest": "ctglip ingest",
    "segment": "ctglip segment",
    "parse-reports": "ctglip parse-reports",
    "synth": "ctglip synth",
    "cache": "ctglip cache",
    "pretrain": "ctglip pretrain",
    "zeroshot": "ctglip zeroshot",
}


class ManifestError(SetupError):
    """A stage's input folder lacks a valid manifest from the stage that should have made it."""


# The status of one item, the same words in every stage's manifest and summary table.
OK = "ok"                      # made by this run
DONE_EARLIER = "done-earlier"  # found finished in the output folder (resume); as good as ok
EMPTY = "empty"                # nothing to work on (an empty report): no output, not a failure
FAILED = "failed"              # bad input or a per-item error; listed at the end, exit code 1
STATUSES = (OK, DONE_EARLIER, EMPTY, FAILED)
USABLE = (OK, DONE_EARLIER)    # items the next stage may use


@dataclass
class ItemStatus:
    """Outcome of one item (scan or report): one of :data:`STATUSES`."""

    item_id: str
    status: str
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageResult:
    """What a stage's ``run`` returns: per-item statuses plus where the outputs are."""

    stage: str
    output_dir: Path
    items: list[ItemStatus]

    @property
    def failed(self) -> list[ItemStatus]:
        return [item for item in self.items if item.status == FAILED]

    def counts(self) -> dict[str, int]:
        """Items per status: every word of :data:`STATUSES`, then any other in first-seen order."""
        counts = dict.fromkeys(STATUSES, 0)
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def jsonable(value: Any) -> Any:
    """Config dataclasses/paths/tuples -> plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_hash(config: Any) -> str:
    """Stable sha256 (16 hex chars) of a config's canonical JSON."""
    canonical = json.dumps(jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (``missing`` where absent)."""
    versions = {"python": platform.python_version(), "ctglip": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def write_manifest(
    output_dir: Path,
    stage: str,
    config: Any,
    items: list[ItemStatus],
    versions: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``output_dir/manifest.json`` atomically; returns its path."""
    data = {
        "schema": MANIFEST_SCHEMA,
        "stage": stage,
        "ctglip_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": jsonable(config),
        "config_hash": config_hash(config),
        "versions": versions,
        "items": {
            item.item_id: {"status": item.status, "error": item.error,
                           "seconds": round(item.seconds, 3), **jsonable(item.extra)}
            for item in items
        },
    }
    data.update(jsonable(extra or {}))
    path = output_dir / MANIFEST_NAME
    write_json_atomic(path, data)
    return path


def read_manifest(folder: Path, stage: str) -> dict[str, Any]:
    """Read and validate the manifest a ``stage`` left in ``folder``."""
    command = STAGE_COMMANDS.get(stage, stage)
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} is missing: {folder} is not the output of `{command}`; run it first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: unreadable manifest ({error}); rerun `{command}`") from error
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise ManifestError(f"{path}: not a ctglip manifest (schema {data.get('schema')!r}, "
                            f"expected {MANIFEST_SCHEMA!r})")
    if data.get("stage") != stage:
        raise ManifestError(f"{path}: written by `{STAGE_COMMANDS.get(data.get('stage'), data.get('stage'))}`, "
                            f"but this step needs the output of `{command}`")
    return data


def ok_items(manifest: dict[str, Any]) -> list[str]:
    """Item ids the manifest marks usable (ok or done earlier: the only ones a next stage may trust)."""
    return [key for key, value in manifest.get("items", {}).items() if value.get("status") in USABLE]
