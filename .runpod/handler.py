"""RunPod Hub's entry point: the same worker `Dockerfile.worker` starts with `python -u -m worker serve`."""

import sys
from pathlib import Path

# Run as a script, Python puts .runpod/ on the path rather than the checkout that holds the worker package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import Settings
from worker.handler import serve

if __name__ == "__main__":
    serve(Settings.from_env())
