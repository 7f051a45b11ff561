VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl

.PHONY: setup run envbench test lint tables

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/setup_env.sh
	VENV=$(VENV) bash scripts/setup_env.sh

# A short real LIBERO evaluation (2 tasks x 1 trial, method none) that ends with a results table,
# on libero_object: the suite whose trained tiny_vla weights are committed.
run: setup
	rm -rf results/tmp/make-run
	$(PY) -m bench.run model=tiny_vla method=none suite=libero_object tasks=[0,1] trials=1 \
		run_dir=results/tmp/make-run

# Rendered vs physics-only LIBERO step cost.
envbench: setup
	$(PY) -m bench.envbench --suite libero_spatial --task 0 --steps 40 --out results/tmp/envbench.csv

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check bench pruning scripts tests

# Tables (Markdown + LaTeX) and figures from the results files only.
tables: setup
	$(PY) -m bench.report
