"""``ctglip zeroshot``: zero-shot organ recognition and abnormality detection.

Grounded and global checkpoints go through the same code: a grounded model embeds each
organ crop inside its mask, a global model embeds the whole volume once and that
embedding is scored against every organ's prompts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.cache.preprocess import PreprocessConfig
from stages.common.ids import InvalidScanId
from stages.common.manifest import MANIFEST_NAME, ItemStatus, StageResult, package_versions, write_manifest
from stages.common.nifti import InputError
from stages.common.progress import ProgressReporter, SilentProgress
from stages.common.text_encoder import DEFAULT_ENCODER_ID, TextEncoder
from stages.pretrain.factory import load_checkpoint
from stages.zeroshot import io
from stages.zeroshot.evaluate import EvaluationConfig, abnormality_metrics, organ_recognition_metrics
from stages.zeroshot.plots import plot_confusion_organs, plot_roc_abnormalities
from stages.zeroshot.prompts import load_templates
from stages.zeroshot.scoring import (PromptBank, abnormality_probabilities, build_prompt_bank, embed_images,
                                     logit_scale_of, organ_ranking)
from stages.zeroshot.sources import ScanSamples, cache_sources, nifti_sources

CONFUSION_PLOT = "confusion_organs.png"
ROC_PLOT = "roc_abnormalities.png"
PER_SCAN_ERRORS = (InputError, InvalidScanId, OSError, ValueError, RuntimeError)


@dataclass(frozen=True)
class ZeroshotConfig:
    """What ``ctglip zeroshot`` does; every CLI option maps to one field.

    Input is either ``ct_dir`` + ``masks_dir`` (raw NIfTI, preprocessed in memory with the
    checkpoint's config) or ``cache_dir``. ``threshold`` fixes the F1 threshold;
    ``validation_fraction`` picks per-abnormality thresholds on that share of scans;
    neither: the ROC point nearest (0, 1).
    """

    checkpoint: Path
    output_dir: Path
    ct_dir: Path | None = None
    masks_dir: Path | None = None
    cache_dir: Path | None = None
    labels: Path | None = None
    abnormalities: Path | None = None
    prompts: Path | None = None
    threshold: float | None = None
    validation_fraction: float | None = None
    resamples: int = 1000
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"
    text_encoder: Path | None = None
    save_embeddings: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        raw = self.ct_dir is not None or self.masks_dir is not None
        if raw == (self.cache_dir is not None):
            raise ValueError("give either --ct-dir and --masks-dir, or --cache (not both)")
        if raw and (self.ct_dir is None or self.masks_dir is None):
            raise ValueError("--ct-dir and --masks-dir go together")
        if self.threshold is not None and self.validation_fraction is not None:
            raise ValueError("give --threshold or --val-fraction, not both")
        if self.validation_fraction is not None and not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"--val-fraction must be between 0 and 1, got {self.validation_fraction}")
        if self.batch_size < 1 or self.resamples < 1:
            raise ValueError("--batch-size and --resamples must be at least 1")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    def evaluation(self) -> EvaluationConfig:
        if self.threshold is not None:
            return EvaluationConfig("given", self.threshold, resamples=self.resamples, seed=self.seed)
        if self.validation_fraction is not None:
            return EvaluationConfig("validation", validation_fraction=self.validation_fraction,
                                    resamples=self.resamples, seed=self.seed)
        return EvaluationConfig("roc", resamples=self.resamples, seed=self.seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def load_text_encoder(recorded: dict, override: Path | None, device: torch.device) -> TextEncoder:
    """The checkpoint's frozen text encoder: ``override``, its recorded path, or its id."""
    if override is not None:
        encoder = TextEncoder.load(override, device=str(device))
    else:
        path, encoder_id = recorded.get("path"), recorded.get("id") or DEFAULT_ENCODER_ID
        use_path = path and (Path(path) / "config.json").is_file() and encoder_id != DEFAULT_ENCODER_ID
        encoder = TextEncoder.load(path if use_path else encoder_id, device=str(device))
    if recorded.get("dim") is not None and int(recorded["dim"]) != encoder.dim:
        raise ValueError(f"text encoder {encoder.encoder_id} gives {encoder.dim}-d vectors, but the checkpoint "
                         f"was trained on {recorded['dim']}-d ones ({recorded.get('id')})")
    return encoder


def _prepare_output(output_dir: Path, overwrite: bool) -> None:
    """Refuse to mix two runs' files; with ``overwrite``, drop the old run's listed outputs."""
    manifest = output_dir / MANIFEST_NAME
    if manifest.is_file():
        if not overwrite:
            raise FileExistsError(f"{output_dir} already holds a ctglip zeroshot run; pass --overwrite "
                                  "or choose another output folder")
        for name in (io.PREDICTIONS_FILE, io.METRICS_FILE, io.EMBEDDINGS_FILE, io.EMBEDDINGS_INDEX_FILE,
                     CONFUSION_PLOT, ROC_PLOT, MANIFEST_NAME):
            (output_dir / name).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)


def score_scan(samples: ScanSamples, embeddings: torch.Tensor, bank: PromptBank, scale: float) -> list[dict]:
    """Prediction rows for one scan (recognition for vocabulary organs, abnormalities for the label space)."""
    rows = []
    per_organ = embeddings.expand(len(samples.organs), -1) if samples.global_image else embeddings
    vocabulary_index = {organ: j for j, organ in enumerate(bank.vocabulary)}
    known = [i for i, organ in enumerate(samples.organs) if organ in vocabulary_index]
    if known:
        probabilities = organ_ranking(per_organ[known], bank, scale)
        for row_probabilities, i in zip(probabilities, known):
            truth = vocabulary_index[samples.organs[i]]
            rows.append(dict(scan_id=samples.scan_id, organ=samples.organs[i], task="organ_recognition",
                             label=samples.organs[i], score=float(row_probabilities[truth]),
                             predicted_organ=bank.vocabulary[int(np.argmax(row_probabilities))],
                             rank=int(np.sum(row_probabilities > row_probabilities[truth])) + 1,
                             complete=samples.complete[i]))
    for i, organ in enumerate(samples.organs):
        if organ not in bank.label_space:
            continue
        scores = abnormality_probabilities(per_organ[i], organ, bank, scale)
        for phrase, score in zip(bank.label_space[organ], scores):
            rows.append(dict(scan_id=samples.scan_id, organ=organ, task="abnormality", label=phrase,
                             score=float(score), predicted_organ=None, rank=None, complete=samples.complete[i]))
    return rows


def _embedding_rows(samples: ScanSamples) -> list[dict]:
    if samples.global_image:
        return [dict(scan_id=samples.scan_id, organ="volume", complete=all(samples.complete),
                     volume_ml=float("nan"), source="volume")]
    return [dict(scan_id=samples.scan_id, organ=organ, complete=complete, volume_ml=volume, source="organ")
            for organ, complete, volume in zip(samples.organs, samples.complete, samples.volume_ml)]


def _write_metrics(config: ZeroshotConfig, predictions: pd.DataFrame, labels: pd.DataFrame | None,
                   vocabulary: list[str], header: dict) -> tuple[dict, list[str]]:
    """metrics.json plus the PNGs; returns the metrics and the files written."""
    output_dir, written = Path(config.output_dir), []
    metrics = dict(header)
    evaluation = config.evaluation()
    recognition = predictions[predictions["task"] == "organ_recognition"]
    if len(recognition):
        metrics["organ_recognition"] = organ_recognition_metrics(predictions, evaluation)
        plot_confusion_organs(recognition, vocabulary, output_dir / CONFUSION_PLOT)
        written.append(CONFUSION_PLOT)
    if labels is not None:
        section, evaluated = abnormality_metrics(predictions, labels, evaluation)
        metrics["abnormality"] = section
        if len(evaluated):
            plot_roc_abnormalities(evaluated, section["per_abnormality"], output_dir / ROC_PLOT)
            written.append(ROC_PLOT)
    io.write_metrics(output_dir / io.METRICS_FILE, metrics)
    return metrics, [io.METRICS_FILE, *written]


def headline(metrics: dict) -> dict[str, float | None]:
    """The four headline figures (``organ_recognition.top1`` ...); None where not computed."""
    return {f"{section}.{key}": metrics.get(section, {}).get(key)
            for section, key in (("organ_recognition", "top1"), ("organ_recognition", "top5"),
                                 ("abnormality", "auc_macro"), ("abnormality", "f1_macro"))}


def run(config: ZeroshotConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Score every scan; a bad scan is recorded and skipped, setup errors raise before any scan."""
    progress = progress or SilentProgress()
    output_dir = Path(config.output_dir)
    labels = io.read_labels(config.labels) if config.labels is not None else None  # bad file: stop before scoring
    templates = load_templates(config.prompts)
    device = resolve_device(config.device)
    model, checkpoint_config = load_checkpoint(Path(config.checkpoint), device=str(device))
    model.eval()
    mode = checkpoint_config.get("mode", "grounded")
    preprocess = PreprocessConfig.from_dict(checkpoint_config["cache"]["preprocess"])
    vocabulary = list(checkpoint_config["organ_vocab"])
    label_space = (io.read_label_space(config.abnormalities) if config.abnormalities is not None
                   else io.label_space_from_mapping(checkpoint_config.get("abnormality_dictionary", {}),
                                                    f"{config.checkpoint} (abnormality dictionary)"))
    organs = set(vocabulary) | set(label_space)
    global_mode = mode == "global"
    if config.cache_dir is not None:
        sources = cache_sources(Path(config.cache_dir), preprocess, organs, global_mode)
    else:
        sources = nifti_sources(Path(config.ct_dir), Path(config.masks_dir), preprocess, organs, global_mode)
    _prepare_output(output_dir, config.overwrite)
    encoder = load_text_encoder(checkpoint_config.get("text_encoder", {}), config.text_encoder, device)
    bank = build_prompt_bank(model, encoder, templates, vocabulary, label_space, device)
    scale = logit_scale_of(model)

    items, rows, embedding_chunks, embedding_index = [], [], [], []
    progress.start(len(sources), "zeroshot")
    for scan_id, load in sources:
        started = time.perf_counter()
        try:
            samples = load()
            embeddings = embed_images(model, samples.images, samples.masks, samples.positions, config.batch_size, device)
            rows.extend(score_scan(samples, embeddings, bank, scale))
        except PER_SCAN_ERRORS as error:
            items.append(ItemStatus(scan_id, "failed", f"{type(error).__name__}: {error}",
                                    time.perf_counter() - started))
            progress.advance(failed=sum(i.status == "failed" for i in items))
            continue
        if config.save_embeddings:
            embedding_chunks.append(embeddings.cpu().numpy())
            embedding_index.extend(_embedding_rows(samples))
        items.append(ItemStatus(scan_id, "ok", seconds=time.perf_counter() - started,
                                extra={"organs": len(samples.organs),
                                       "incomplete_organs": int(sum(not c for c in samples.complete))}))
        progress.advance(organs=len(samples.organs))

    predictions = pd.DataFrame(rows, columns=io.PREDICTION_COLUMNS)
    predictions["rank"] = predictions["rank"].astype("Int64")
    io.write_predictions(output_dir / io.PREDICTIONS_FILE, predictions)
    outputs = [io.PREDICTIONS_FILE]
    if config.save_embeddings:
        dim = int(bank.organ_matrix.shape[1])
        matrix = np.concatenate(embedding_chunks) if embedding_chunks else np.zeros((0, dim), np.float32)
        io.write_embeddings(output_dir, matrix, pd.DataFrame(embedding_index, columns=io.EMBEDDING_INDEX_COLUMNS[1:]))
        outputs += [io.EMBEDDINGS_FILE, io.EMBEDDINGS_INDEX_FILE]
    failed = sum(item.status == "failed" for item in items)
    header = {"mode": mode, "checkpoint": str(config.checkpoint), "prompts_version": templates.version,
              "n_scans": len(items) - failed, "n_scans_failed": failed}
    metrics, metric_files = _write_metrics(config, predictions, labels, vocabulary, header)
    outputs += metric_files
    write_manifest(output_dir, "zeroshot", config, items,
                   package_versions("torch", "monai", "nibabel", "sentence-transformers"),
                   extra={"mode": mode, "preprocess": preprocess.to_dict(), "text_encoder": encoder.describe(),
                          "logit_scale": scale, "prompts": templates.describe(), "label_space": label_space,
                          "organ_vocab": vocabulary, "outputs": outputs,
                          "headline": headline(metrics)})
    return StageResult("zeroshot", output_dir, items)
