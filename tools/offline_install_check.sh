#!/usr/bin/env bash
# Does a wheelhouse (make wheelhouse) install the course with no network at all?
#   tools/offline_install_check.sh [WHEELHOUSE]      (default build/wheelhouse)
# Creates a fresh virtual environment in a temporary folder and runs `make install WHEELHOUSE=...`
# into it with pip's configuration files, extra indexes and caches switched off and, where
# `unshare -rn` is allowed, inside a network namespace with no network; then imports the course's
# packages, runs `pip check`, and prints the time taken and the environment's size.
set -euo pipefail
cd "$(dirname "$0")/.."
wheelhouse=$(realpath "${1:-build/wheelhouse}")
[ -d "$wheelhouse" ] || { echo "no wheelhouse at $wheelhouse: run make wheelhouse first" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lthkit-offline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Only the wheelhouse may serve pip: no config files, no index, find-links or constraints from outside.
export PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT TORCH MAKEFLAGS MFLAGS MAKELEVEL
offline=()
if unshare -rn true 2>/dev/null; then
  offline=(unshare -rn)
  echo "network: none (unshare -rn)"
else
  echo "network: present (unshare -rn not allowed here); pip still runs with --no-index and no config"
fi

start=$(date +%s)
"${offline[@]}" make install VENV="$tmp/venv" WHEELHOUSE="$wheelhouse"
took=$(( $(date +%s) - start ))
"${offline[@]}" "$tmp/venv/bin/python" -m pip check
"${offline[@]}" "$tmp/venv/bin/python" - <<'PY'
import importlib.metadata as md

import torch, torchvision, lthkit, jupyterlab, ipykernel, papermill, nbval, matplotlib, ipywidgets  # noqa: F401
import onnxruntime, torch_pruning, distributed  # noqa: F401  the course extra's and the sweep extra's

x = torch.ones(3, 3)
assert float((x @ x).sum()) == 27.0
print("imported: lthkit", md.version("lthkit"), "from", lthkit.__file__)
print("torch", torch.__version__, "torchvision", torchvision.__version__, "jupyterlab", jupyterlab.__version__)
print("CUDA libraries installed:", sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(("nvidia", "triton", "cuda"))) or "none")
PY
echo "wheelhouse: $(ls "$wheelhouse" | wc -l) files, $(du -sh "$wheelhouse" | cut -f1); offline install: ${took} s; environment: $(du -sh "$tmp/venv" | cut -f1)"
echo "OK: the course installs from $wheelhouse alone"
