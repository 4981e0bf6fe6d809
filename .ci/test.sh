#!/usr/bin/env bash
# The whole test suite: export is in sync, notebooks run, pytest passes. Ends with pytest's summary line.
set -euo pipefail
VENV=${VENV:-.venv}
BIN="$VENV/bin"
export PYTHONHASHSEED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)

echo "== 1/3 nbdev_export leaves vega3d_nb/ unchanged"
before=$(git status --porcelain -- vega3d_nb 2>/dev/null; git diff -- vega3d_nb 2>/dev/null | sha1sum)
"$BIN/nbdev_export"
after=$(git status --porcelain -- vega3d_nb 2>/dev/null; git diff -- vega3d_nb 2>/dev/null | sha1sum)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev_export changed vega3d_nb/ -- edit the notebooks, export, and commit both:" >&2
  git status --porcelain -- vega3d_nb >&2
  exit 1
fi

echo "== 2/3 nbdev_test (notebooks)"
"$BIN/nbdev_test" --n_workers 2 --timing

echo "== 3/3 pytest tests/ (export and notebooks took $(( $(date +%s) - start )) s)"
"$BIN/python" -m pytest tests/ -q -p no:cacheprovider
