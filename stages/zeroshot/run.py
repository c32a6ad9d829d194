"""``ctglip zeroshot``: zero-shot organ recognition and abnormality detection.

Grounded and global checkpoints go through the same code: a grounded model embeds each
organ crop inside its mask, a global model embeds the whole volume once and that
embedding is scored against every organ's prompts.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.ids import InvalidScanId
from stages.common.manifest import ItemStatus, StageResult, package_versions, write_manifest
from stages.common.nifti import InputError
from stages.common.outputs import claim_output
from stages.common.progress import ProgressReporter, SilentProgress
from stages.common.device import resolve_device
from stages.pretrain.factory import load_checkpoint
from stages.zeroshot import io
from stages.zeroshot.config import ZeroshotConfig
from stages.zeroshot.training import training_state
from stages.zeroshot.encoder import load_text_encoder
from stages.zeroshot.output import refuse_finished_run
from stages.zeroshot.predictions import embedding_rows, score_scan
from stages.zeroshot.prompts import load_templates
from stages.zeroshot.protocols import get_protocol
from stages.zeroshot.reference import read_reference_labels
from stages.zeroshot.report import headline, write_metrics
from stages.zeroshot.scoring import build_prompt_bank, embed_images, logit_scale_of
from stages.zeroshot.sources import cache_sources, nifti_sources

PER_SCAN_ERRORS = (InputError, InvalidScanId, OSError, ValueError, RuntimeError)


def run(config: ZeroshotConfig, progress: ProgressReporter | None = None) -> StageResult:
    """Score every scan; a bad scan is recorded and skipped, setup errors raise before any scan."""
    progress = progress or SilentProgress()
    output_dir = Path(config.output_dir)
    protocol = get_protocol(config.protocol)
    labels = read_reference_labels(config.labels, config.label_map)  # bad labels: stop before any scan
    templates = load_templates(config.prompts, protocol)
    device = resolve_device(config.device)
    model, checkpoint = load_checkpoint(Path(config.checkpoint), device=str(device))
    model.eval()
    training = training_state(checkpoint, Path(config.checkpoint))
    mode = checkpoint.config.mode
    preprocess = checkpoint.config.cache.preprocess
    vocabulary = list(checkpoint.config.organ_vocab)
    label_space = (io.read_label_space(config.abnormalities) if config.abnormalities is not None
                   else io.label_space_from_mapping(checkpoint.config.abnormality_dictionary,
                                                    f"{config.checkpoint} (abnormality dictionary)"))
    global_mode = mode == "global"
    if labels.scan_level is not None:
        label_space, labels = labels.extend_label_space(label_space, templates, protocol, global_mode)
    organs = set(vocabulary) | set(label_space)
    if config.cache_dir is not None:
        sources = cache_sources(Path(config.cache_dir), preprocess, organs, global_mode)
    else:
        sources = nifti_sources(Path(config.ct_dir), Path(config.masks_dir), preprocess, organs, global_mode,
                                config.hu_check)
    if not sources:
        raise InputError(f"{config.cache_dir or config.ct_dir}: no scans to score (no *.nii.gz / *.nii files, "
                         "or an empty cache)")
    labels = labels.attached([scan_id for scan_id, _ in sources], str(config.cache_dir or config.ct_dir))
    refuse_finished_run(output_dir, config.overwrite)
    with claim_output(output_dir, "zeroshot", overwrite=config.overwrite):
        encoder = load_text_encoder(checkpoint.config.text_encoder, config.text_encoder, device)
        bank = build_prompt_bank(model, encoder, templates, vocabulary, label_space, device)
        scale = logit_scale_of(model)

        items, rows, embedding_chunks, embedding_index = [], [], [], []
        progress.start(len(sources), "zeroshot")
        for scan_id, load in sources:
            started = time.perf_counter()
            try:
                samples = load()
                embeddings = embed_images(model, samples.images, samples.masks, samples.positions, config.batch_size, device,
                                          samples.densities)
                rows.extend(score_scan(samples, embeddings, bank, scale))
            except PER_SCAN_ERRORS as error:
                items.append(ItemStatus(scan_id, "failed", f"{type(error).__name__}: {error}",
                                        time.perf_counter() - started))
                progress.advance(failed=sum(i.status == "failed" for i in items))
                continue
            if config.save_embeddings:
                embedding_chunks.append(embeddings.cpu().numpy())
                embedding_index.extend(embedding_rows(samples))
            items.append(ItemStatus(scan_id, "ok", seconds=time.perf_counter() - started,
                                    extra={"organs": len(samples.organs),
                                           "incomplete_organs": int(sum(not c for c in samples.complete))}))
            progress.advance(organs=len(samples.organs))

        predictions = pd.DataFrame(rows, columns=io.PREDICTION_COLUMNS)
        if labels.scan_level is not None:
            predictions = pd.concat([predictions, labels.scan_label_predictions(predictions, protocol)],
                                    ignore_index=True)
        predictions["rank"] = predictions["rank"].astype("Int64")
        io.write_predictions(output_dir / io.PREDICTIONS_FILE, predictions)
        outputs = [io.PREDICTIONS_FILE]
        if config.save_embeddings:
            dim = int(bank.organ_matrix.shape[1])
            matrix = np.concatenate(embedding_chunks) if embedding_chunks else np.zeros((0, dim), np.float32)
            io.write_embeddings(output_dir, matrix, pd.DataFrame(embedding_index, columns=io.EMBEDDING_INDEX_COLUMNS[1:]))
            outputs += [io.EMBEDDINGS_FILE, io.EMBEDDINGS_INDEX_FILE]
        failed = sum(item.status == "failed" for item in items)
        header = {"mode": mode, "checkpoint": str(config.checkpoint), "training": training,
                  "protocol": protocol.describe(),
                  "prompts_version": templates.version, "n_scans": len(items) - failed, "n_scans_failed": failed}
        metrics, metric_files = write_metrics(output_dir, config.evaluation(), predictions, labels, vocabulary, header)
        outputs += metric_files
        write_manifest(output_dir, "zeroshot", config, items,
                       package_versions("torch", "monai", "nibabel", "sentence-transformers"),
                       extra={"mode": mode, "preprocess": preprocess.to_dict(), "text_encoder": encoder.describe(),
                              "logit_scale": scale, "prompts": templates.describe(), "label_space": label_space,
                              "organ_vocab": vocabulary, "outputs": outputs, "training": training,
                              "headline": headline(metrics)})
    return StageResult("zeroshot", output_dir, items)
