#!/usr/bin/env bash
# InfiniteTalk Studio in one command.
#   ./studio.sh [run --port N --endpoint-port M]
#                        install (first run) and start the local endpoint + the dashboard (embedded default):
#                        `studio run`, the command it installs into .venv (`studio --help` lists the others)
#   ./studio.sh test     install the test tools and the GPU image's Python stack (.venv-image), run every test
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
  studio_command
}

# The `studio` command (pyproject.toml's [project.scripts]) as an editable install of this checkout: the
# dependencies came from the requirements file, so --no-deps; redone only when pyproject.toml or the folder changes.
studio_command() {
  local stamp="$VENV/.studio-command-stamp" want
  want=$( { cat pyproject.toml; pwd; } | sha256sum | cut -c1-32)
  [[ -x "$VENV/bin/studio" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" >"$stamp"
}

# InfiniteTalk's source for the tests that run its real code: INFINITETALK_SRC, else ../shared/infinitetalk-src,
# else a clone of the pinned commit in a cache when the network allows; without it those tests skip, saying how.
infinitetalk_source() {
  [[ -n "${INFINITETALK_SRC:-}" ]] && return
  local commit shared cache
  commit=$(sed -n 's/^INFINITETALK_COMMIT = "\(.*\)"$/\1/p' worker/engines/infinitetalk_args.py)
  shared="../shared/infinitetalk-src"
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/infinitetalk-studio/InfiniteTalk-$commit"
  if [[ -f "$shared/wan/multitalk.py" ]]; then
    INFINITETALK_SRC="$(cd "$shared" && pwd)"
  elif [[ -f "$cache/wan/multitalk.py" ]]; then
    INFINITETALK_SRC="$cache"
  else
    rm -rf "$cache.partial" && mkdir -p "$(dirname "$cache")"
    if GIT_TERMINAL_PROMPT=0 timeout 300 git clone -q --filter=blob:none --no-checkout \
        https://github.com/MeiGen-AI/InfiniteTalk.git "$cache.partial" 2>/dev/null \
        && git -C "$cache.partial" checkout -q "$commit" 2>/dev/null; then
      mv "$cache.partial" "$cache" && INFINITETALK_SRC="$cache"
    else
      rm -rf "$cache.partial"
      echo "InfiniteTalk's source is not here and could not be cloned: its real-code tests will skip" \
        "(set INFINITETALK_SRC to a checkout of MeiGen-AI/InfiniteTalk at $commit)" >&2
      return
    fi
  fi
  export INFINITETALK_SRC
}

# The GPU image's own Python stack in a second venv: requirements-worker.txt's exact pins (PyPI's torch 2.4.1 and
# torchvision 0.19.1 are CUDA builds that also run on a CPU) plus the pins Dockerfile.worker installs beside them
# (xformers, num2words), on the image's Python 3.11. tests/test_image_stack.py runs the selftest in it. Built once:
# a stamp holding the hash of those pins skips the build until they change. flash-attn is not installed (it
# builds only against CUDA); what stands in for it, and for the other GPU-only parts, the selftest's summary names.
IMAGE_VENV="${STUDIO_IMAGE_VENV:-.venv-image}"
image_stack() {
  local python="${PYTHON_IMAGE:-}" extras want stamp="$IMAGE_VENV/.studio-image-stamp"
  if [[ -z "$python" ]] && ! command -v python3.11 >/dev/null && command -v apt-get >/dev/null; then
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "installing python3.11 (the GPU image's Python) with apt-get" >&2
    $sudo apt-get install -y -qq python3.11 python3.11-venv >/dev/null 2>&1 || true
  fi
  if [[ -z "$python" ]]; then
    python=$(command -v python3.11 || true)
    python="${python:-$PYTHON}"
  fi
  extras=$(grep -oE '(xformers|num2words)==[0-9][0-9a-z.]*' Dockerfile.worker | sort -u | tr '\n' ' ')
  want=$( { cat requirements-worker.txt; echo "$extras"; "$python" -V; } | sha256sum | cut -c1-32)
  export STUDIO_IMAGE_VENV="$IMAGE_VENV"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || echo "the image runs Python 3.11; building $IMAGE_VENV with $("$python" -V) (set PYTHON_IMAGE)" >&2
  echo "building the GPU image's Python stack in $IMAGE_VENV (requirements-worker.txt; about 2.5 GB, once)" >&2
  rm -rf "$IMAGE_VENV"
  "$python" -m venv "$IMAGE_VENV"
  "$IMAGE_VENV/bin/python" -m pip install -q --upgrade pip
  if ! "$IMAGE_VENV/bin/python" -m pip install -q -r requirements-worker.txt; then
    echo "requirements-worker.txt's pins did not install (pip names the package above): the GPU image would" \
      "not build either; fix the pin" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # the pins are words
  if ! "$IMAGE_VENV/bin/python" -m pip install -q --no-deps $extras; then
    echo "Dockerfile.worker's pins $extras did not install (pip names the package above)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
}

case "${1:-run}" in
  run)
    system_packages
    python_packages requirements.txt
    exec "$VENV/bin/studio" run "${@:2}"
    ;;
  test)
    system_packages test
    python_packages requirements-dev.txt
    python_packages requirements-ml-tests.txt
    "$VENV/bin/python" -m pip install -q --no-deps torchvision==0.28.0
    image_stack
    infinitetalk_source
    exec "$VENV/bin/python" -m pytest -p no:cacheprovider "${@:2}"
    ;;
  example)
    system_packages
    python_packages requirements.txt
    exec "$VENV/bin/studio" job examples/single_image.json
    ;;
  *)
    echo "usage: $0 [run|test|example]" >&2
    exit 2
    ;;
esac
