"""Finding the data files a `LoadDataFromFileSystem` reads: local paths or fsspec URLs,
directories and glob patterns, and the format to read them with."""

from __future__ import annotations

import codecs
from pathlib import PurePosixPath
from typing import Any, Optional

from potstill.errors import PotstillUserError

# File suffix -> the `datasets` builder that reads it.
FILETYPES = {
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
}
_GLOB_CHARACTERS = frozenset("*?[")
_TEXT_FILETYPES = frozenset({"json", "csv", "text"})


def find_data_files(location: str, storage_options: Optional[dict[str, Any]]) -> list[str]:
    """The files a path, directory or glob pattern names, sorted.

    Args:
        location: a local path or an fsspec URL (`s3://...`, `memory://...`), possibly with
            `*`, `?` or `[...]`; a directory means every file under it.
        storage_options: passed to the fsspec file system.

    Returns:
        The files, as URLs for remote file systems and plain paths for local ones.

    Raises:
        PotstillUserError: when nothing matches, naming `location`.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
    if _GLOB_CHARACTERS & set(path):
        found = sorted(p for p in fs.glob(path) if fs.isfile(p))
        what = "No file matches the pattern"
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if not _hidden(p, path))
        what = "No file in the directory"
    elif fs.isfile(path):
        found = [path]
        what = ""
    else:
        raise PotstillUserError(
            f"`data_files` {location!r} does not exist. Give an existing file, a directory or a "
            "glob pattern such as 'data/*.jsonl'."
        )
    if not found:
        raise PotstillUserError(
            f"{what} `data_files` {location!r}. Check the path (and that the pattern's "
            "extension matches your files)."
        )
    if "://" in location:
        return [fs.unstrip_protocol(p) for p in found]
    return found


def filetype_of(files: list[str], given: Optional[str]) -> str:
    """The `datasets` builder for the files: `given`, or the one the first file's suffix names.

    Raises:
        PotstillUserError: for a suffix potstill does not know, saying how to name the type.
    """
    if given:
        return "json" if given == "jsonl" else given
    suffix = PurePosixPath(files[0]).suffix.lower()
    if suffix not in FILETYPES:
        raise PotstillUserError(
            f"Cannot tell the format of {files[0]!r} from its suffix {suffix!r}: pass "
            f"`filetype` ('json', 'parquet', 'csv' or 'text'). Known suffixes: {sorted(FILETYPES)}."
        )
    return FILETYPES[suffix]


def is_text_filetype(filetype: str) -> bool:
    """Whether the format is text, and so has an encoding."""
    return filetype in _TEXT_FILETYPES


def first_undecodable(
    files: list[str], encoding: str, storage_options: Optional[dict[str, Any]]
) -> Optional[tuple[str, int, str]]:
    """The first file that is not valid `encoding` text, with the offset and the reason.

    Returns:
        `(file, byte offset, reason)`, or None when every file decodes.
    """
    import fsspec

    for file in files:
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        with fsspec.open(file, "rb", **(storage_options or {})) as handle:
            while True:
                chunk = handle.read(1 << 20)
                pending = len(decoder.getstate()[0])  # bytes of a character cut by the last chunk
                try:
                    decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    return file, offset - pending + error.start, error.reason
                if not chunk:
                    break
                offset += len(chunk)
    return None


def _hidden(path: str, root: str) -> bool:
    relative = PurePosixPath(path).relative_to(PurePosixPath(root)) if path != root else None
    return relative is not None and any(part.startswith((".", "_")) for part in relative.parts)
