#!/usr/bin/env bash
# The GPU checks of the engine and of `cockpit check`, as one short run on a lent NVIDIA machine:
# tokens/s and MFU of dense_175m and mac_mini in bf16, NVML telemetry, the memory estimate against
# max_memory_allocated (bench/gpu_engine.py). The device image has torch, transformers, accelerate,
# tokenizers and nvidia-ml-py but no pydantic, which travels as wheels.
#
#   here, once per checkout:  bash bench/device_check.sh --fetch-wheels      (into .whl/, git-ignored)
#   on the device (the device tool's run): command "bash bench/device_check.sh", carry [".whl"]
#
# Figures go to $OUT (the device tool brings them back) or bench/results/; record them in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch-wheels" ]; then
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  ls -la .whl
  exit 0
fi
out="${OUT:-bench/results}"
mkdir -p "$out"
if ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'accelerate', accelerate.__version__, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
python3 bench/gpu_engine.py --out "$out/gpu_engine.json" "${@}" 2>&1 | tee "$out/gpu_engine.log"
