"""Answers kept on disk, keyed by request: the response cache and the per-step journal.

A request's key hashes the LLM's identity (class, model, endpoint), the conversation, the
generation kwargs, `num_generations` and the generation's index, so the N samples of one
input stay distinct. Two stores use it:

- the per-step journal of a pipeline run, always on: every answered request is appended with
  its row, so a killed run that resumes re-sends none of the requests that had finished (and
  identical rows stay separate requests);
- the opt-in response cache (`use_response_cache=True` on an LLM or a `Pipeline`), shared by
  every run: a re-run over the same inputs makes no requests.

Each store is an append-only JSON-lines file (see `potstill.utils.append_log`): what was
appended survives `kill -9`, and a line cut short is skipped when the file is read back. Each
line carries a checksum: a line damaged on disk is skipped with a warning naming the file, and
only its request is sent again. Text that is not valid UTF-8 (a lone surrogate) is kept exactly,
as a JSON escape. Only answers without errors are stored: a failed request is never
remembered, so the next run sends it again.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional, Union

from potstill.llms.typing import Generations
from potstill.utils.append_log import AppendLog, MappedLog, read_lines, seal, unseal
from potstill.utils.canonical_json import CANONICAL_FORMAT, canonical_json

logger = logging.getLogger("potstill.cache")

_active: contextvars.ContextVar[tuple[ResponseStore, ...]] = contextvars.ContextVar(
    "potstill_response_stores", default=()
)
_open_stores: dict[Path, ResponseStore] = {}
_open_lock = threading.Lock()


class ResponseStore:
    """An append-only file of request key -> generations, indexed in memory.

    Attributes:
        per_row: whether entries are per dataset row (the journal: two identical rows are
            two requests, so repeated instructions still get their own samples) or per
            request content (the response cache: identical requests share an answer).
    """

    def __init__(self, path: Path, per_row: bool = False) -> None:
        self.path = path
        self.per_row = per_row
        self._index: dict[str, Generations] = {}
        # The journal has one writer (its pipeline run) and is written on the hot path, so
        # it appends through a memory map; the shared cache may have several writer processes.
        self._log: Union[MappedLog, AppendLog] = MappedLog(path) if per_row else AppendLog(path)
        self._closed = False
        damaged = 0
        for line in read_lines(path):
            try:
                record = json.loads(unseal(line) or b"")
                self._index[record["k"]] = Generations(
                    record["t"], input_tokens=record.get("i"), output_tokens=record.get("o")
                )
            except (ValueError, KeyError, TypeError):  # damaged: costs only this entry
                damaged += 1
        if damaged:
            logger.warning(
                "%s: skipped %d damaged line(s); the requests they answered are sent again.",
                path,
                damaged,
            )

    def key(self, request_key: str, row: int) -> str:
        """The entry key of a request for row `row` in this store."""
        return f"{request_key}:{row}" if self.per_row else request_key

    def __len__(self) -> int:
        return len(self._index)

    def get(self, key: str) -> Optional[Generations]:
        """The stored generations for `key`, if any (a copy)."""
        found = self._index.get(key)
        if found is None:
            return None
        return Generations(
            found, input_tokens=found.input_tokens, output_tokens=found.output_tokens
        )

    def put(self, key: str, generations: Generations) -> None:
        """Appends the generations of one request (only answers without errors)."""
        if any(error is not None for error in generations.errors) or key in self._index:
            return
        if self._closed:  # the run that opened it is over: a late answer is not kept
            return
        record = {
            "k": key,
            "t": list(generations),
            "i": generations.input_tokens,
            "o": generations.output_tokens,
        }
        try:
            line = json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, so it is kept exactly
            line = json.dumps(record).encode("ascii")
        self._log.append(seal(line))
        self._index[key] = generations

    def close(self) -> None:
        """Closes the file (it reopens on the next `put`)."""
        self._log.close()

    def release(self) -> None:
        """Closes the file for good and drops the in-memory index (see `forget_store`)."""
        self._closed = True
        self._log.close()
        self._index = {}


def open_store(path: Path, per_row: bool = False) -> ResponseStore:
    """The store for `path`, shared by everything in this process that uses it."""
    path = Path(os.path.abspath(path))
    with _open_lock:
        store = _open_stores.get(path)
        if store is None:
            store = _open_stores[path] = ResponseStore(path, per_row=per_row)
        return store


def forget_store(path: Path) -> None:
    """Closes and forgets the store for `path` (e.g. before its folder is deleted)."""
    with _open_lock:
        store = _open_stores.pop(Path(os.path.abspath(path)), None)
    if store is not None:
        store.release()


def active_stores() -> tuple[ResponseStore, ...]:
    """The stores the current pipeline step uses (its journal), if any."""
    return _active.get()


def use_stores(*stores: ResponseStore) -> contextvars.Token[tuple[ResponseStore, ...]]:
    """Makes `stores` active for the current context (the engine does this per step)."""
    return _active.set(stores)


def request_key(
    identity: dict[str, Any],
    input: Any,
    kwargs: dict[str, Any],
    num_generations: Optional[int],
    index: Optional[int],
) -> str:
    """The key of one request.

    Args:
        identity: what identifies the LLM (class, model, endpoint).
        input: the conversation.
        kwargs: the generation kwargs.
        num_generations: generations asked for in the request (`None` when fanned out).
        index: which of the fanned-out generations this is (`None` for one native request).

    Returns:
        A hex digest.
    """
    # Callables (e.g. vLLM `logits_processors`) are named by what they are, not by their
    # address, so the key is the same in every process; kwargs are sorted by name.
    text = canonical_json([CANONICAL_FORMAT, identity, input, kwargs, num_generations, index])
    return hashlib.blake2b(text.encode("ascii"), digest_size=20).hexdigest()


def default_response_cache_dir() -> Path:
    """`$POTSTILL_RESPONSE_CACHE_DIR`, or `~/.cache/potstill/responses`."""
    env = os.environ.get("POTSTILL_RESPONSE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "potstill" / "responses"
