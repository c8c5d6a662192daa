# brainalign developer entry points. `make install` is the shared, idempotent step.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

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
	$(BIN)/python -m pytest -q --durations=25

bench: install
	$(BIN)/python benchmarks/ridge.py
	$(BIN)/python benchmarks/rsa.py
	$(BIN)/python benchmarks/encoders.py
	$(BIN)/python benchmarks/loaders.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/geometry.py
	$(BIN)/python benchmarks/service.py

# Every table in docs/validation.md, from scratch (tens of minutes on 2 cores).
validate: install
	$(BIN)/python -m pytest -q -m slow
	$(BIN)/brainalign run pipelines/alice_fmri.yaml
	$(BIN)/python -m brainalign.validation.report alice build/validation/alice-fmri-10mm --figure docs/validation/alice_10mm_layer_profiles.png
	$(BIN)/brainalign run pipelines/alice_fmri_shared.yaml
	$(BIN)/python -m brainalign.validation.report alice build/validation/alice-fmri-10mm-shared
	$(BIN)/brainalign run pipelines/alice_fmri_6mm.yaml
	$(BIN)/python -m brainalign.validation.report alice build/validation/alice-fmri-6mm
	$(BIN)/brainalign run pipelines/alice_fmri_hrf.yaml
	$(BIN)/python -m brainalign.validation.report alice build/validation/alice-fmri-10mm-hrf
	$(BIN)/python -m brainalign.validation.alice_unpenalized
	$(BIN)/brainalign run pipelines/frank2015_eeg.yaml
	$(BIN)/python -m brainalign.validation.report frank build/validation/frank2015-eeg --figure docs/validation/frank2015_layer_profile.png
	$(BIN)/python -m brainalign.validation.layer_id
	$(BIN)/python -m brainalign.validation.layer_id --families
	$(BIN)/python -m brainalign.validation.layer_id --families glover_ar1 --output build/validation/layer_id_families-glover
	$(BIN)/python -m brainalign.validation.layer_id --families --trsa --seeds 1
	$(BIN)/python -m brainalign.validation.defaults_check --out build/validation/defaults_check
	$(BIN)/python -m brainalign.validation.calibration --demo
	$(BIN)/python -m brainalign.validation.geometry trsa
	$(BIN)/python -m brainalign.validation.geometry id
	$(BIN)/python -m brainalign.validation.geometry planted

clean:
	rm -rf $(VENV) build *.egg-info
