"""RunPod Hub's entry point: the same worker `Dockerfile.worker` starts with `python -u -m worker serve`."""

from worker.handler import serve
from worker.settings import Settings

if __name__ == "__main__":
    serve(Settings.from_env())
