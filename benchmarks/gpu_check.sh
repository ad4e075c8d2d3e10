#!/usr/bin/env bash
# The GPU check on the device machine (README "GPU"): install the carried wheels (.whl/, from
# `make gpu-wheels`) beside the machine's own packages, then run benchmarks/gpu_check.py.
# Arguments go to gpu_check.py (e.g. --out "$OUT/gpu-$(date +%F).json", --steps pytest,ufm_30k).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import zarr" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  # Only where zarr is missing (the GPU machine): the wheels are for its CPython 3.12.
  # --target, not a venv: a venv made from the machine's python (itself a venv) would not see
  # its torch. --no-deps: the wheels are exactly what is missing (Makefile, GPU_WHEELS).
  site=${GPU_SITE:-/tmp/ntpgeom-site}
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || { echo "gpu check: installing .whl/ failed" >&2; exit 1; }
  export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
