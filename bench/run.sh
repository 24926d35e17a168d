#!/usr/bin/env bash
# Side-by-side performance harness (not part of CI): tiergate vs LiteLLM vs Portkey vs direct.
# Usage: bench/run.sh [--quick] [--targets direct,tiergate,litellm,portkey] [--duration S] ...
# See bench/README.md. Installs what is missing into bench/.work/ (Debian packages need root).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(command -v python3.11 || command -v python3)"
exec "$PY" bench/run.py "$@"
