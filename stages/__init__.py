"""ctglip stages: each sub-package is one pipeline step usable from Python without the CLI."""

__version__ = "0.1.0"
