"""``ctglip cache``: organ crop / mask / text samples on disk, preprocessed once.

``run(CacheConfig(...))`` builds a cache; ``load_cache(path)`` reads one (``len`` and
``[i]`` -> dict with image, mask, scan_id, organ, text, abnormal, complete, ...).
"""
from stages.cache.build import run
from stages.cache.config import CacheConfig, parse_window
from stages.cache.io import Cache, load_cache
from stages.cache.preprocess import (WINDOW_PRESETS, OrganSample, PreprocessConfig, PreprocessedScan,
                                     organ_samples, preprocess_scan, volume_sample)

__all__ = ["Cache", "CacheConfig", "OrganSample", "PreprocessConfig", "PreprocessedScan", "WINDOW_PRESETS",
           "load_cache", "organ_samples", "parse_window", "preprocess_scan", "run", "volume_sample"]
