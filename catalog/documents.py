"""Reading a small JSON document from the bucket without trusting it: bounded, UTF-8, standard JSON, shallow.

Every file the catalogue reads back from a store (a worker's metadata.json, and the curation, request and
deletion files the catalogue writes itself) passes these checks before a model looks at it, because anyone who
can write to the bucket can put anything at those keys, and one bad file must never stop a sync.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.store import LocalStore, NotRegularFile, S3Store, Store

MAX_BYTES = 1024 * 1024
"""The largest document read: the worker's metadata files are a few KB (params are stored without inline media),
the catalogue's own files smaller still, so a bigger object is not one of them, and a JSON bomb of many MB is
refused before it is parsed. From a local folder and from S3 at most this much (plus one byte) is read."""
MAX_DEPTH = 32
"""The deepest nesting of objects and lists a document may have (the worker's reach 4). Deeper structures
broke pydantic's serializer at 255 levels and json at about 1000, and would reach History's parameter table."""


def fetch(store: Store, key: str) -> bytes:
    """The object's first MAX_BYTES + 1 bytes: enough to tell that it is too big without holding all of it."""
    if isinstance(store, LocalStore):  # a local folder: read no further than the limit, and only a regular file
        return store.read(key, MAX_BYTES + 1)
    if isinstance(store, S3Store):  # S3: a ranged GET
        answer = store.client.get_object(Bucket=store.bucket, Key=key, Range=f"bytes=0-{MAX_BYTES}")
        return answer["Body"].read(MAX_BYTES + 1)
    return store.get(key)


def _path(parts: tuple[Any, ...]) -> str:
    shown = ".".join(str(part) for part in parts[:6])
    return (shown + ".…" if len(parts) > 6 else shown) or "the top level"


def shape_problem(data: Any) -> str | None:
    """Why the parsed document cannot be catalogued as a whole, or None: nested deeper than MAX_DEPTH, or holding
    a lone surrogate (JSON's `\\ud800` escape decodes to one; SQLite and browsers cannot take it). One walk,
    without recursion, so a deep document cannot exhaust the stack."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict | list):
            if len(where) >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep (at {_path(where)})"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, inner in items:
                if isinstance(name, str) and not _is_text(name):
                    return f"a name in {_path(where)} is not text (a lone surrogate)"
                stack.append(((*where, name), inner))
        elif isinstance(value, str) and not _is_text(value):
            return f"{_path(where)}: not text (a lone surrogate such as \\ud800)"
    return None


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(name: str) -> None:
    """Python's json reads NaN and Infinity, which JSON has not; pydantic would turn them into nulls silently."""
    raise ValueError(f"{name} is not a JSON value")


def read_json(store: Store, key: str) -> Any | str:
    """The parsed document, or the reason it cannot be used (unreadable, too big, not UTF-8, not standard JSON,
    too deep, a lone surrogate). A missing object is a reason too: `missing(reason)` tells it apart."""
    try:
        raw = fetch(store, key)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except NotRegularFile as error:
        return f"{error}: not a file the studio wrote"
    except Exception as error:
        if _is_missing(error):
            return MISSING
        return f"{NOT_FETCHED}: {type(error).__name__}: {error}"[:300]
    if len(raw) > MAX_BYTES:
        return f"larger than {MAX_BYTES // 1024} KiB: not a file the studio wrote (those are a few KB)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (byte {error.start} is {raw[error.start : error.start + 1]!r})"
    try:
        data = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        return f"nested more than {MAX_DEPTH} levels deep"
    except ValueError as error:
        return f"unreadable: {type(error).__name__}: {error}"[:300]
    return shape_problem(data) or data


MISSING = "missing: there is no such object in the store"
NOT_FETCHED = "could not be fetched"
"""How a reason starts when the store failed to hand the object over (a network error, a refused GET), which may
pass: unlike a file that is there but bad, it says nothing about what the object holds (see not_fetched)."""


def not_fetched(reason: str) -> bool:
    """Whether read_json's reason is the store failing to hand the object over, rather than the object's content:
    a writer must not replace what it could not read (another dashboard's newer change may be in it)."""
    return reason.startswith(NOT_FETCHED)


def _is_missing(error: Exception) -> bool:
    """Whether a store's error means the key is not there (S3's NoSuchKey / 404), as opposed to a failure."""
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", "")) if hasattr(error, "response") else ""
    return code in ("NoSuchKey", "404", "NotFound")


def validation_reason(error: ValidationError, what: str) -> str:
    """A model's first complaint as one line naming the field as the file spells it."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"does not match the {what} schema: {where}: {message}"
