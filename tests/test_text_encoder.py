"""The frozen text encoder on real MiniLM weights: long reports are chunked, not truncated."""
from __future__ import annotations

import numpy as np
import pytest

from stages.common.text_encoder import TextEncoder


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.load()


def test_short_text_is_one_plain_embedding(encoder):
    text = "The liver shows a 12 mm hypodense lesion."
    assert encoder.chunks(text) == [(text, encoder.token_count(text))]
    vector = encoder.encode([text])
    direct = encoder._model.encode([text], normalize_embeddings=True)
    np.testing.assert_allclose(vector, direct, atol=1e-5)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_long_report_keeps_its_last_finding(encoder):
    filler = " ".join(f"The {organ} is unremarkable in size and attenuation without focal abnormality."
                      for organ in ["liver", "spleen", "pancreas", "left kidney", "right kidney", "gallbladder",
                                    "stomach", "bladder", "prostate", "aorta", "heart", "esophagus"] * 3)
    with_finding = filler + " There is a large pericardial effusion."
    without = filler + " There is no pericardial effusion."
    assert encoder.token_count(with_finding) > encoder.max_tokens
    chunks = encoder.chunks(with_finding)
    assert len(chunks) >= 2 and all(tokens <= encoder.max_tokens for _, tokens in chunks)
    assert " ".join(chunk for chunk, _ in chunks) == with_finding
    long_pair = encoder.encode([with_finding, without])
    # truncation would make the two reports identical; chunking keeps the difference
    truncated = encoder._model.encode([with_finding, without], normalize_embeddings=True)
    assert np.allclose(truncated[0], truncated[1], atol=1e-5)
    query = encoder.encode(["large pericardial effusion"])[0]
    assert float(long_pair[0] @ query) > float(long_pair[1] @ query)
    np.testing.assert_allclose(np.linalg.norm(long_pair, axis=1), 1.0, atol=1e-5)


def test_encode_of_nothing_is_empty(encoder):
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_chunk_token_counts_match_the_tokenizer(encoder):
    text = " ".join(f"Sentence {i} notes a {i} mm hypodense hepatic lesion near segment {i % 8}." for i in range(60))
    for chunk, tokens in encoder.chunks(text):
        assert tokens == encoder.token_count(chunk) <= encoder.max_tokens
