# `make run` and `make test` set everything up on a fresh machine (a .venv with the CPU build of
# torch where there is no GPU, then the package and its dependencies from pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch 2.13 (any looser spec pulls a multi-GB CUDA build). On a machine with an
# NVIDIA driver, `make TORCH=torch==2.13.0 run` with your CUDA index configured gets a GPU build.
TORCH ?= torch==2.13.0
CORES ?= all
SNAKEMAKE_ARGS ?=

.PHONY: setup run test bench lint clean slurm-test

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# A real single-node SLURM (root + apt): starts it, runs the tests marked `slurm`, stops it.
slurm-test: setup
	bash .ci/slurm

lint: setup
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --cores 1

clean:
	rm -rf results logs .snakemake
