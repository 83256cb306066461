"""`python -m worker weights check|fetch`: are the GPU engine's weights where it will look, and get exactly those.

    python -m worker weights check [--variant base,lora] [--dir /runpod-volume/models]
    python -m worker weights fetch --to /runpod-volume/models [--variant base,multi,lora]

`check` prints every file each variant loads, present (with its size) or missing (with the env var that places
it), from the same list the engine checks at cold start (worker/engines/infinitetalk_weights.py); it exits 1 when
anything is missing. Without `--dir` it checks where this worker's env vars (CKPT_DIR, ...) point.

`fetch` lists those files in their public Hugging Face repositories, prints the total, then downloads what is not
there yet with huggingface_hub into the default layout under `--to`: one file at a time, each with a progress
bar, resuming a partial file (its `.incomplete` under `<folder>/.cache/huggingface/`) after a dropped connection
or an interrupted run, and checking every file's size against the repository's. Run it on a pod with the network
volume mounted, or at image build time (Dockerfile.worker's BAKE_WEIGHTS=1).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.contract import JobError
from core.settings import Settings
from worker.engines.infinitetalk_weights import (
    COMPONENTS,
    DEFAULT_VARIANTS,
    VARIANTS,
    Wanted,
    variant_name,
    wanted,
    weight_files,
)
from worker.variants import PRELOAD_VAR, WeightPaths, preload_variant

ATTEMPTS = 3
"""Tries per file when the connection drops mid-file; each resumes where the last one stopped."""


class WeightsError(Exception):
    """One line for the user; `code` is the exit status (2: bad input, 1: missing files or a failed fetch)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def human(size: int) -> str:
    """Bytes for people: 27.3 GB, 512.0 MB, 870 B."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def size_on_disk(path: Path) -> int | None:
    """A file's size, a folder's files' total, or None when the path is missing."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return None


# ------------------------------------------------------------------------------------------------------------
# Which files: the engine's own list, per named variant.
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One variant (or other model) and the files it needs."""

    name: str
    description: str
    files: list[tuple[Path, str]]


def parse_names(values: Iterable[str] | None) -> list[str] | None:
    """`--variant a,b --variant c` as names in order; `all` is every variant and model; None when not given."""
    if not values:
        return None
    names: list[str] = []
    known = [*VARIANTS, *COMPONENTS]
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name == "all":
                names += known
            elif name in known:
                names.append(name)
            else:
                raise WeightsError(f"--variant: {name!r} is not one of {', '.join(known)} (or all)", code=2)
    return list(dict.fromkeys(names))


def sections(names: list[str], paths: WeightPaths, root: Path | None, settings: Settings) -> list[Section]:
    """The files each named variant or model needs, from the engine's list (and each model's own); under root
    in the default layout, or where the settings (env vars) put them when root is None."""
    found = []
    for name in names:
        if name in VARIANTS:
            variant = VARIANTS[name](paths)
            found.append(Section(name, variant.describe(), weight_files(variant, paths)))
        else:
            component = COMPONENTS[name]
            folder = root / component.folder if root else component.configured(settings)
            found.append(Section(name, component.description, component.needed(folder)))
    return found


def default_sections(settings: Settings, paths: WeightPaths, root: Path | None) -> list[Section]:
    """DEFAULT_VARIANTS, plus the cold-start variant INFINITETALK_PRELOAD names when its files differ."""
    found = sections(list(DEFAULT_VARIANTS), paths, root, settings)
    try:
        preload = preload_variant(settings.weights.get(PRELOAD_VAR), paths, tuple(settings.input_roots))
    except JobError as error:
        raise WeightsError(error.message, code=2) from None
    files = weight_files(preload, paths)
    if all(section.files != files for section in found):
        found.append(Section(f"{variant_name(preload)} ({PRELOAD_VAR})", preload.describe(), files))
    return found


# ------------------------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------------------------


def check(found: list[Section], out: TextIO) -> int:
    """Print each section's files, present with their size or missing with their env var; 1 if any is missing."""
    missing_in = []
    for section in found:
        print(f"{section.name} ({section.description}):", file=out)
        missing = 0
        for path, var in section.files:
            size = size_on_disk(path)
            if size is None:
                missing += 1
                print(f"  missing  {'':>9}  {path}  (set {var})", file=out)
            else:
                print(f"  present  {human(size):>9}  {path}", file=out)
        if missing:
            missing_in.append(f"{section.name} ({missing})")
    if missing_in:
        print(f"Missing files for: {', '.join(missing_in)}. `python -m worker weights fetch` gets them.", file=out)
        return 1
    print(f"Nothing missing for {', '.join(section.name for section in found)}.", file=out)
    return 0


# ------------------------------------------------------------------------------------------------------------
# fetch
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """One file to have locally, as the Hub lists it."""

    repo_id: str
    revision: str
    path_in_repo: str
    size: int
    folder: Path

    @property
    def local(self) -> Path:
        return self.folder / self.path_in_repo

    def is_complete(self) -> bool:
        return self.local.is_file() and self.local.stat().st_size == self.size


def _hub_error(error: Exception) -> str:
    """A Hub or network error in one line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def refuse_unsafe_path(repo_id: str, revision: str, path: str, folder: Path) -> None:
    """Refuse a listed path that would land outside `folder`: the listing comes from whatever HF_ENDPOINT answers
    (a mirror, a proxy, a man in the middle), and huggingface_hub writes `local_dir / path` as it is given, so
    `google/umt5-xxl/../../../../x` would write above `--to`. An empty, `.` or `..` part, a backslash or a NUL is
    refused outright; then the resolved path (symbolic links followed) must still be under the folder."""
    parts = path.split("/")
    bad = next((part for part in parts if part in ("", ".", "..") or "\\" in part or "\0" in part), None)
    if bad is not None or not (folder / path).resolve().is_relative_to(folder.resolve()):
        shown = repr(path[:200])
        raise WeightsError(
            f"{repo_id} at {revision} lists {shown}, a path that leaves its folder {folder}: refusing to fetch "
            "anything from it; check HF_ENDPOINT (a mirror or proxy that rewrites listings is not the Hub)"
        )


def remote_files(items: list[Wanted]) -> list[RemoteFile]:
    """Each wanted path as the repository's files (a folder is every file under it), with the Hub's sizes."""
    import requests
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    from huggingface_hub.hf_api import RepoFile

    api = HfApi()
    trees: dict[tuple[str, str], dict[str, int]] = {}
    files: dict[Path, RemoteFile] = {}
    for item in items:
        key = (item.source.repo_id, item.revision)
        if key not in trees:
            try:
                listing = api.list_repo_tree(item.source.repo_id, revision=item.revision, recursive=True)
                trees[key] = {entry.path: entry.size for entry in listing if isinstance(entry, RepoFile)}
            except (HfHubHTTPError, requests.RequestException, OfflineModeIsEnabled) as error:
                raise WeightsError(
                    f"listing {item.source.repo_id} at {item.revision} failed: {_hub_error(error)}"
                ) from None
        tree = trees[key]
        under = {path: size for path, size in tree.items() if path.startswith(item.path_in_repo + "/")}
        for path in under:
            refuse_unsafe_path(item.source.repo_id, item.revision, path, item.folder)
        if item.path_in_repo in tree:
            under = {item.path_in_repo: tree[item.path_in_repo]}
        if not under:
            raise WeightsError(
                f"{item.source.repo_id} at {item.revision} has no {item.path_in_repo} (for {item.local})"
            )
        for path, size in sorted(under.items()):
            remote = RemoteFile(item.source.repo_id, item.revision, path, size, item.folder)
            files.setdefault(remote.local, remote)
    return list(files.values())


def download(remote: RemoteFile, err: TextIO) -> None:
    """One file with huggingface_hub, resuming its partial download; retried when the connection drops."""
    import requests
    from huggingface_hub import hf_hub_download

    replace = remote.local.is_file()  # there, but not the Hub's size: the Hub's bookkeeping would keep it
    for attempt in range(1, ATTEMPTS + 1):
        try:
            hf_hub_download(
                remote.repo_id,
                remote.path_in_repo,
                revision=remote.revision,
                local_dir=remote.folder,
                force_download=replace,
            )
            break
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as error:
            if attempt == ATTEMPTS:
                raise WeightsError(
                    f"{remote.repo_id}/{remote.path_in_repo}: the connection dropped {ATTEMPTS} times "
                    f"({_hub_error(error)}); run the same command again to resume"
                ) from None
            print(f"  connection dropped ({_hub_error(error)}); resuming (try {attempt + 1} of {ATTEMPTS})", file=err)
            replace = False
            time.sleep(1)
        except Exception as error:  # the Hub's HTTP errors, a full disk, a refused size check
            raise WeightsError(
                f"{remote.repo_id}/{remote.path_in_repo}: {_hub_error(error)}; run the same command again to resume"
            ) from None
    actual = size_on_disk(remote.local)
    if actual != remote.size:
        raise WeightsError(f"{remote.local} is {actual} bytes but {remote.repo_id} has {remote.size}; fetch again")


def fetch(found: list[Section], root: Path, out: TextIO, err: TextIO) -> int:
    """Download every file the sections need into root's default layout, then check them as the engine does."""
    try:
        items = wanted(root, [entry for section in found for entry in section.files])
    except ValueError as error:
        raise WeightsError(str(error), code=2) from None
    files = remote_files(items)
    todo = [remote for remote in files if not remote.is_complete()]
    total, remaining = sum(r.size for r in files), sum(r.size for r in todo)
    print(
        f"{len(files)} files, {human(total)} for {', '.join(s.name for s in found)} under {root}: "
        f"{len(files) - len(todo)} already there, {len(todo)} to download ({human(remaining)})",
        file=out,
        flush=True,
    )
    done = 0
    for index, remote in enumerate(todo, start=1):
        print(
            f"[{index}/{len(todo)}] {remote.repo_id} {remote.path_in_repo} ({human(remote.size)})", file=out, flush=True
        )
        download(remote, err)
        done += remote.size
        print(f"  {human(done)} of {human(remaining)} done", file=out, flush=True)
    return check(found, out)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------


def main(
    argv: list[str] | None = None, settings: Settings | None = None, prog: str = "python -m worker weights"
) -> int:
    """`weights check` or `weights fetch`; one line on stderr and exit 2 for bad input, 1 when files are missing.
    `prog` is the command as typed (`studio weights` too): the help's examples use it."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.replace("python -m worker weights", prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    names = f"{', '.join([*VARIANTS, *COMPONENTS])} or all; comma-separated or repeated"
    check_parser = commands.add_parser("check", help="print every file the engine needs, present or missing")
    check_parser.add_argument("--variant", action="append", help=f"{names} (default: {','.join(DEFAULT_VARIANTS)} "
                              f"and {PRELOAD_VAR}'s)")  # fmt: skip
    check_parser.add_argument("--dir", type=Path, help="a models root in the default layout (default: CKPT_DIR, ...)")
    fetch_parser = commands.add_parser("fetch", help="download exactly those files from Hugging Face")
    fetch_parser.add_argument("--to", type=Path, required=True, help="the models root, e.g. /runpod-volume/models")
    fetch_parser.add_argument("--variant", action="append", help=f"{names} (default: {','.join(DEFAULT_VARIANTS)})")
    args = parser.parse_args(argv)
    settings = settings or Settings.from_env()
    given = args.dir if args.command == "check" else args.to
    root = given.resolve() if given else None
    paths = WeightPaths.under(root) if root else WeightPaths.from_weights(settings.weights)
    try:
        chosen = parse_names(args.variant)
        if args.command == "check":
            found = sections(chosen, paths, root, settings) if chosen else default_sections(settings, paths, root)
            return check(found, sys.stdout)
        assert root is not None  # --to is required
        return fetch(sections(chosen or list(DEFAULT_VARIANTS), paths, root, settings), root, sys.stdout, sys.stderr)
    except WeightsError as error:
        print(f"weights {args.command}: {error}", file=sys.stderr)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
