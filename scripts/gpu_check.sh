#!/usr/bin/env bash
# The GPU check (docs/performance.md#gpu-check): on a machine with an NVIDIA GPU and
# nothing but this repository, install from the lock, generate a few minutes of speech,
# decode it on the CPU and on CUDA (the ASR backend per batch size, then the corpus and
# synth pipelines), print xRT and WER per device. The devices must agree on the words.
# Needs Python 3.11, internet access to PyPI and an NVIDIA driver for CUDA 12
# (CTranslate2 4.x loads libcublas.so.12, which the nvidia-cublas-cu12 wheel provides).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
WORK=${WORK:-/tmp/speechmill-gpu-check}
PY=${PYTHON:-python3}
start=$(date +%s)

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.lock
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .
# CUDA 12 cuBLAS for CTranslate2, when the machine's CUDA libraries are another major version
"$VENV/bin/pip" install --quiet --disable-pip-version-check nvidia-cublas-cu12
CUBLAS=$("$VENV/bin/python" -c 'import nvidia.cublas, os; print(os.path.join(nvidia.cublas.__path__[0], "lib"))')
export LD_LIBRARY_PATH="$CUBLAS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi: CPU only"
rm -rf "$WORK" && mkdir -p "$WORK"
"$VENV/bin/python" scripts/gpu_check.py make-audio "$WORK/audio"
"$VENV/bin/python" scripts/gpu_check.py backend --audio "$WORK/audio"
"$VENV/bin/python" scripts/gpu_check.py pipelines --audio "$WORK/audio" --work "$WORK/runs"
echo "gpu check finished in $(( $(date +%s) - start )) s"
