# ctglip: `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_SIZE ?= small

.PHONY: help install test demo bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first, pinned to the CUDA build that runs on CPU too and matches torchvision
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install ctglip with its dev extras

test: install ## run the test suite
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests

demo: install ## run the whole pipeline on generated data (DEMO_SIZE=small|full)
	HF_HUB_OFFLINE=1 DEMO_SIZE=$(DEMO_SIZE) PATH=$(abspath $(VENV))/bin:$$PATH bash examples/demo.sh

bench: install ## run the benchmark scripts
	HF_HUB_OFFLINE=1 PYTHON=$(abspath $(PY)) bash benchmarks/run_all.sh

clean: ## remove the venv and demo outputs
	rm -rf $(VENV) demo
