#!/usr/bin/env bash
# InfiniteTalk Studio in one command.
#   ./studio.sh          install (first run) and start the local endpoint + the dashboard (embedded default)
#   ./studio.sh test     install the test tools and run the whole test suite
#   ./studio.sh example  run examples/single_image.json through the worker and print the result
# Set RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY (and S3_* for the bucket) to use RunPod instead of the local endpoint.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV="${STUDIO_VENV:-.venv}"

system_packages() {
  local missing=()
  command -v ffmpeg >/dev/null || missing+=(ffmpeg)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  if [[ "${1:-}" == "test" ]] && ! command -v chromium >/dev/null; then missing+=(chromium); fi
  if ((${#missing[@]})); then
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "installing ${missing[*]} with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

python_packages() {
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$1"
}

case "${1:-run}" in
  run)
    system_packages
    python_packages requirements.txt
    exec "$VENV/bin/python" -m worker studio
    ;;
  test)
    system_packages test
    python_packages requirements-dev.txt
    python_packages requirements-ml-tests.txt
    exec "$VENV/bin/python" -m pytest -p no:cacheprovider "${@:2}"
    ;;
  example)
    system_packages
    python_packages requirements.txt
    exec "$VENV/bin/python" -m worker run examples/single_image.json
    ;;
  *)
    echo "usage: $0 [run|test|example]" >&2
    exit 2
    ;;
esac
