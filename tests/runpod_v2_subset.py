"""The part of RunPod's REST v2 OpenAPI document the product speaks, copied into tests/runpod_v2_openapi_subset.json.

RunPod publishes the document in its public docs repository (runpod/docs, `api-reference-v2/openapi.json`). That
repository carries no licence file at its top level, so the whole document is not copied here: only the operations
the product calls (OPERATIONS) and every component they reference, each verbatim, with a header saying where and
when they were taken. The loopback server (tests/runpod_rest_server.py) validates requests and its own answers
against them; tests/test_runpod_rest.py checks the copy is closed under `$ref` and, where a copy of RunPod's
document is at hand, that it still equals a fresh extraction.

    python -m tests.runpod_v2_subset openapi.json          # compare: exit 1 and name each difference
    python -m tests.runpod_v2_subset openapi.json --write  # re-extract after reading what changed
    git -C /work/.mirror/runpod+docs/repo show HEAD:api-reference-v2/openapi.json > openapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUBSET = Path(__file__).with_name("runpod_v2_openapi_subset.json")
SOURCE = {
    "repository": "https://github.com/runpod/docs",
    "path": "api-reference-v2/openapi.json",
    "commit": "a900806e253c4f8c16da27d1a4370e72456da4cb",
    "commitDate": "2026-08-20",
    "copied": "2026-12-07",
    "note": "A subset: the operations tests/runpod_v2_subset.py names and the components they reference, verbatim. "
    "Regenerate with `python -m tests.runpod_v2_subset OPENAPI.json --write`.",
}
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("/v2/serverless", "get"),
    ("/v2/serverless", "post"),
    ("/v2/serverless/{id}", "get"),
    ("/v2/serverless/{id}", "patch"),
    ("/v2/serverless/{id}/workers", "get"),
    ("/v2/serverless/{id}/workers/{workerId}/logs", "get"),
    ("/v2/serverless/{id}/releases", "get"),
    ("/v2/network-volumes", "get"),
    ("/v2/catalog/gpus", "get"),
    ("/v2/billing/serverless", "get"),
)
"""(path, method) of every v2 operation the product sends: deploy, Endpoint health, the prices and the billing."""


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _pointer(document: dict[str, Any], ref: str) -> tuple[str, str]:
    parts = ref.removeprefix("#/").split("/")
    if not ref.startswith("#/components/") or len(parts) != 3 or parts[2] not in document["components"][parts[1]]:
        raise ValueError(f"{ref}: not a component of the document")
    return parts[1], parts[2]


def extract(document: dict[str, Any]) -> dict[str, Any]:
    """OPERATIONS' path items (their shared parameters and the named methods) and the components they reach."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in OPERATIONS:
        item = document["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = item[method]
    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    while pending:
        kind, name = _pointer(document, pending.pop())
        if name in components.get(kind, {}):
            continue
        value = document["components"][kind][name]
        components.setdefault(kind, {})[name] = value
        pending.extend(_refs(value))
    components = {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())}
    if "securitySchemes" in document["components"]:
        components["securitySchemes"] = document["components"]["securitySchemes"]
    return {
        "x-subset-of": SOURCE,
        "openapi": document["openapi"],
        "info": document["info"],
        "servers": document["servers"],
        "security": document["security"],
        "paths": paths,
        "components": components,
    }


def differences(old: Any, new: Any, where: str = "") -> Iterator[str]:
    """JSON pointers at which two documents differ (the copy's own header aside)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key == "x-subset-of" and not where:
                continue
            if key not in new:
                yield f"{where}/{key}: gone from the document"
            elif key not in old:
                yield f"{where}/{key}: new in the document"
            else:
                yield from differences(old[key], new[key], f"{where}/{key}")
    elif old != new:
        yield f"{where}: changed"


def main(argv: list[str] | None = None) -> int:
    parse = argparse.ArgumentParser(prog="python -m tests.runpod_v2_subset", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parse.add_argument("openapi", type=Path, help="RunPod's api-reference-v2/openapi.json")
    parse.add_argument("--write", action="store_true", help=f"rewrite {SUBSET.name} from it")
    args = parse.parse_args(argv)
    fresh = extract(json.loads(args.openapi.read_text()))
    if args.write:
        SUBSET.write_text(json.dumps(fresh, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {SUBSET}")
        return 0
    found = list(differences(json.loads(SUBSET.read_text()), fresh))
    for line in found:
        print(line)
    print(f"{len(found)} difference(s) between {SUBSET.name} and {args.openapi}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
