#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine: uv, system packages, the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv" >&2
  python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi

# Tesseract does the offline provider's OCR of images.
if ! command -v tesseract >/dev/null 2>&1; then
  echo "setup: installing tesseract-ocr" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tesseract-ocr >/dev/null
fi

uv sync --frozen --quiet
