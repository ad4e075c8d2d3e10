# `make run` and `make test` set everything up on a fresh machine (a .venv with the CPU build of
# torch where there is no GPU, then the package and its dependencies from pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: a looser spec pulls a multi-GB CUDA build from PyPI. Where a
# local CPU wheel is configured (as on the project's machines) this takes it; elsewhere pick the
# build with TORCH_INDEX, e.g. https://download.pytorch.org/whl/cpu (no GPU) or .../whl/cu128.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= all
SNAKEMAKE_ARGS ?=

.PHONY: setup run resume test bench lint clean slurm-test gpu-wheels gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

# After a kill (kill -9, a closed terminal, a lost node) Snakemake leaves its lock behind and marks
# the jobs that were running as incomplete: remove the lock, then rerun those jobs (training
# continues from its checkpoint). Only when no other snakemake runs in this folder: --unlock
# removes a live run's lock too.
resume: setup
	$(BIN)/snakemake --unlock $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)

# The suite runs on every core (pytest-xdist), each test file on one worker, so a file's
# module-scoped fixtures are built once (tests/conftest.py hands the longest out first).
# PYTEST_JOBS=0: serial.
PYTEST_JOBS ?= auto
test: setup
	$(BIN)/pytest -n $(PYTEST_JOBS) --dist loadfile $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# A real single-node SLURM (root + apt): starts it, runs the tests marked `slurm`, stops it.
slurm-test: setup
	bash .ci/slurm

# The GPU check (issue 18; README "GPU"). The GPU machine reaches no package registry and lacks
# zarr: gpu-wheels fetches, for its Python 3.12, exactly the wheels it lacks (zarr's closure less
# what it has: numpy, packaging, typing-extensions, pyyaml) into .whl/ (git-ignored), which the
# device tool carries; benchmarks/gpu_check.sh installs them there. Versions: this venv's.
GPU_WHEELS ?= zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
GPU_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
	manylinux2014_x86_64
gpu-wheels:
	rm -rf .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp $(GPU_PLATFORMS:%=--platform %) -d .whl $(GPU_WHEELS)
	@ls .whl

# Without CUDA it writes a "no CUDA device: skipped" JSON to a temp path and exits 0.
gpu-check:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python3) bash benchmarks/gpu_check.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --cores 1

clean:
	rm -rf results logs .snakemake
