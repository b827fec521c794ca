"""Answers kept on disk, keyed by request: the response cache and the per-step journal.

A request's key hashes the LLM's identity (class, model, endpoint), the conversation, the
generation kwargs, `num_generations` and the generation's index, so the N samples of one
input stay distinct. Two answer files use it:

- the per-step journal of a pipeline run, always on: every answered request is appended with
  its row, so a killed run that resumes re-sends none of the requests that had finished (and
  identical rows stay separate requests);
- the opt-in response cache (`use_response_cache=True` on an LLM or a `Pipeline`), shared by
  every run: a re-run over the same inputs makes no requests.

Each is an `AnswerFile`: an append-only JSON-lines file (see `potstill.utils.append_log`): what was
appended survives `kill -9`, and a line cut short is skipped when the file is read back. Each
line carries a checksum: a line damaged on disk is skipped with a warning naming the file, and
only its request is sent again. Text that is not valid UTF-8 (a lone surrogate) is kept exactly,
as a JSON escape. Only answers without errors are stored: a failed request is never
remembered, so the next run sends it again.

An LLM looks its requests up through one `KnownAnswers` per batch (`known_answers(llm)`),
whichever path sends them (a synchronous LLM's batch or an AsyncLLM's requests).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from potstill.llms.typing import Generations
from potstill.utils.append_log import AppendLog, MappedLog, read_lines, seal, unseal
from potstill.utils.canonical_json import CANONICAL_FORMAT, canonical_json, one_shot_encoder

if TYPE_CHECKING:
    from potstill.llms.base import LLM

logger = logging.getLogger("potstill.cache")

_active: contextvars.ContextVar[tuple[AnswerFile, ...]] = contextvars.ContextVar(
    "potstill_response_stores", default=()
)
_open_stores: dict[Path, AnswerFile] = {}
_open_lock = threading.Lock()
# `json.dumps(record, ensure_ascii=False)` without building an encoder per answer (a record
# of texts and token counts holds no cycle).
_encode_line = one_shot_encoder(json.JSONEncoder(ensure_ascii=False, check_circular=False))
# Per pipeline run: id of an LLM -> its identity and the identity's text (see `run_scope`).
_identities: contextvars.ContextVar[Optional[dict[int, tuple[Any, dict[str, Any], str]]]] = (
    contextvars.ContextVar("potstill_llm_identities", default=None)
)


class AnswerFile:
    """An append-only file of request key -> generations (the answers), indexed in memory.

    Attributes:
        per_row: whether entries are per dataset row (the journal: two identical rows are
            two requests, so repeated instructions still get their own samples) or per
            request content (the response cache: identical requests share an answer).
    """

    def __init__(self, path: Path, per_row: bool = False) -> None:
        self.path = path
        self.per_row = per_row
        # The answers read when the file opened: tuples of texts and token counts (not
        # `Generations`: tuples of plain values are not tracked by the garbage collector).
        self._index: dict[str, _Answer] = {}
        # The answers appended since: only the `hash()` of their keys, so a long run does not
        # keep every answer (or key) it wrote in memory; one is read back from the file if
        # asked for (seldom: a run asks for each row's answer once).
        self._written: set[int] = set()
        # The journal has one writer (its pipeline run) and is written on the hot path, so
        # it appends through a memory map; the shared cache may have several writer processes.
        self._log: Union[MappedLog, AppendLog] = MappedLog(path) if per_row else AppendLog(path)
        self._closed = False
        damaged = 0
        for line in read_lines(path):
            try:
                key, answer = _decode(line)
            except (ValueError, KeyError, TypeError):  # damaged: costs only this entry
                damaged += 1
                continue
            self._index[key] = answer
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
        return len(self._index) + len(self._written)

    def get(self, key: str) -> Optional[Generations]:
        """The stored generations for `key`, if any (a copy)."""
        found = self._index.get(key)
        if found is None:
            if hash(key) not in self._written:
                return None
            found = self._written_answer(key)
            if found is None:
                return None
        texts, input_tokens, output_tokens = found
        return Generations(texts, input_tokens=input_tokens, output_tokens=output_tokens)

    def put(self, key: str, generations: Generations) -> None:
        """Appends the generations of one request (only answers without errors)."""
        errors = generations.errors
        if errors.count(None) != len(errors) or key in self._index:
            return
        if self._closed:  # the run that opened it is over: a late answer is not kept
            return
        hashed = hash(key)
        if hashed in self._written and self._written_answer(key) is not None:
            return
        record = {
            "k": key,
            "t": list(generations),
            "i": generations.input_tokens,
            "o": generations.output_tokens,
        }
        try:
            line = _encode_line(record).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escaped, so it is kept exactly
            line = json.dumps(record).encode("ascii")
        self._log.append(seal(line))
        self._written.add(hashed)

    def _written_answer(self, key: str) -> Optional[_Answer]:
        """The answer to `key` appended in this session, read back from the file."""
        for line in read_lines(self.path):
            try:
                found, answer = _decode(line)
            except (ValueError, KeyError, TypeError):
                continue
            if found == key:
                return answer
        return None

    def close(self) -> None:
        """Closes the file (it reopens on the next `put`)."""
        self._log.close()

    def release(self) -> None:
        """Closes the file for good and drops the in-memory index (see `forget_store`)."""
        self._closed = True
        self._log.close()
        self._index = {}
        self._written = set()


_Answer = tuple[tuple[Optional[str], ...], tuple[Optional[int], ...], tuple[Optional[int], ...]]


def _decode(line: bytes) -> tuple[str, _Answer]:
    """The key and the answer (its texts and token counts) of one line of an answer file.

    Raises:
        ValueError, KeyError, TypeError: a damaged line.
    """
    record = json.loads(unseal(line) or b"")
    generations = Generations(
        record["t"], input_tokens=record.get("i"), output_tokens=record.get("o")
    )
    answer = (
        tuple(generations),
        tuple(generations.input_tokens),
        tuple(generations.output_tokens),
    )
    return record["k"], answer


class KnownAnswers:
    """Where the requests of one batch look for answers given before, and leave their new
    ones: the pipeline step's journal and, when the LLM has it on, the response cache.

    One is made per batch (see `known_answers`), so the LLM's identity is dumped once per
    batch, not once per request.

    Attributes:
        files: the journal and/or the response cache, looked up in that order.
        identity: what identifies the LLM's answers (its `cache_identity()`).
    """

    __slots__ = ("_identity_text", "files", "identity")

    def __init__(
        self,
        files: tuple[AnswerFile, ...],
        identity: dict[str, Any],
        text: Optional[str] = None,
    ) -> None:
        self.files = files
        self.identity = identity
        self._identity_text = identity_text(identity) if text is None else text

    def key(
        self,
        input: Any,
        kwargs: dict[str, Any],
        num_generations: Optional[int],
        index: Optional[int],
    ) -> str:
        """The key of one request (see `request_key`)."""
        return _key(self._identity_text, input, kwargs, num_generations, index)

    def recall(self, key: str, row: int) -> Optional[Generations]:
        """The answer given before to a request of row `row`, if any. It is copied into the
        files looked up before the one that had it (the journal keeps what the cache had)."""
        for position, file in enumerate(self.files):
            found = file.get(file.key(key, row))
            if found is not None:
                for other in self.files[:position]:
                    other.put(other.key(key, row), found)
                return found
        return None

    def remember(self, key: str, row: int, generations: Generations) -> None:
        """Keeps a new answer in every file (answers with errors are not kept)."""
        for file in self.files:
            file.put(file.key(key, row), generations)


def known_answers(llm: LLM) -> Optional[KnownAnswers]:
    """The `KnownAnswers` of a batch of `llm`'s requests.

    Args:
        llm: the LLM about to send the batch.

    Returns:
        `None` when no answers are kept (outside a pipeline run, with the cache off).
    """
    files = active_stores()
    if llm.use_response_cache:
        folder = Path(llm.response_cache_dir or default_response_cache_dir())
        cache = open_store(folder / "responses.jsonl")
        if cache not in files:  # the pipeline may have turned on the same cache
            files = (*files, cache)
    if not files:
        return None
    memo = _identities.get()
    if memo is None:
        return KnownAnswers(files, llm.cache_identity())
    known = memo.get(id(llm))
    if known is None or known[0] is not llm:
        identity = llm.cache_identity()
        known = memo[id(llm)] = (llm, identity, identity_text(identity))
    return KnownAnswers(files, known[1], known[2])


@contextlib.contextmanager
def run_scope() -> Iterator[None]:
    """Within this block (a pipeline run, and the tasks and threads it starts), each LLM's
    identity is dumped once, not once per batch: a run does not change its LLMs."""
    token = _identities.set({})
    try:
        yield
    finally:
        _identities.reset(token)


def open_store(path: Path, per_row: bool = False) -> AnswerFile:
    """The store for `path`, shared by everything in this process that uses it."""
    path = Path(os.path.abspath(path))
    with _open_lock:
        store = _open_stores.get(path)
        if store is None:
            store = _open_stores[path] = AnswerFile(path, per_row=per_row)
        return store


def forget_store(path: Path) -> None:
    """Closes and forgets the store for `path` (e.g. before its folder is deleted)."""
    with _open_lock:
        store = _open_stores.pop(Path(os.path.abspath(path)), None)
    if store is not None:
        store.release()


def active_stores() -> tuple[AnswerFile, ...]:
    """The stores the current pipeline step uses (its journal), if any."""
    return _active.get()


def use_stores(*stores: AnswerFile) -> contextvars.Token[tuple[AnswerFile, ...]]:
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
    return _key(identity_text(identity), input, kwargs, num_generations, index)


def identity_text(identity: dict[str, Any]) -> str:
    """The part of every request key that identifies the LLM (the same for a whole batch)."""
    return canonical_json([CANONICAL_FORMAT, identity])


def _key(
    identity: str,
    input: Any,
    kwargs: dict[str, Any],
    num_generations: Optional[int],
    index: Optional[int],
) -> str:
    # Callables (e.g. vLLM `logits_processors`) are named by what they are, not by their
    # address, so the key is the same in every process; kwargs are sorted by name.
    text = identity + canonical_json([input, kwargs, num_generations, index])
    return hashlib.blake2b(text.encode("ascii"), digest_size=20).hexdigest()


def default_response_cache_dir() -> Path:
    """`$POTSTILL_RESPONSE_CACHE_DIR`, or `~/.cache/potstill/responses`."""
    env = os.environ.get("POTSTILL_RESPONSE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "potstill" / "responses"
