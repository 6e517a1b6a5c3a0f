#!/usr/bin/env bash
# One-time, idempotent set-up of a fresh machine: uv, system packages, the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tesseract does the offline provider's OCR of images. Without root (or a sudo that needs no
# password) it is not installed, and Trellis runs without reading images.
if ! command -v tesseract >/dev/null 2>&1; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#as_root[@]} -eq 0 ] || sudo -n true 2>/dev/null; }; then
    echo "setup: installing tesseract-ocr" >&2
    "${as_root[@]}" apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq tesseract-ocr >/dev/null
  else
    echo "setup: tesseract is missing and cannot be installed here (no root or apt);" \
      "images will not be read. Install it with your system's packages" \
      "(Debian/Ubuntu: sudo apt-get install tesseract-ocr; macOS: brew install tesseract)." >&2
  fi
fi

scripts/uv sync --frozen --quiet
