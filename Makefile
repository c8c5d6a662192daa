# brainalign developer entry points. `make install` is the shared, idempotent step.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test bench validate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/brainalign demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/ridge.py
	$(BIN)/python benchmarks/rsa.py
	$(BIN)/python benchmarks/encoders.py
	$(BIN)/python benchmarks/loaders.py
	$(BIN)/python benchmarks/pipeline.py

validate: install
	$(BIN)/python -m pytest -q -m slow
	$(BIN)/brainalign run pipelines/alice_fmri.yaml
	$(BIN)/brainalign run pipelines/frank2015_eeg.yaml
	$(BIN)/python -m brainalign.validation.layer_id

clean:
	rm -rf $(VENV) build *.egg-info
