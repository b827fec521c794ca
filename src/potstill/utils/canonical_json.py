"""One text per value: what request keys and step signatures hash.

A request's key (`potstill.llms.cache.request_key`) and a step's signature
(`potstill.pipeline.signature`) must be the same for the same content in every process, and
different as soon as the content differs. Both hash `canonical_json(value)`: JSON with every
mapping's keys sorted (at every depth), ASCII only (text that is not valid UTF-8, such as a
lone surrogate, is escaped, so it still has a text), and values JSON cannot hold written
without memory addresses (a callable by its name and code fingerprint).

`CANONICAL_FORMAT` is hashed with the text: when the text of some value has to change, raising
it changes every key and signature at once, so nothing stored under the old text is taken for
the answer to a new request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from json.encoder import (  # type: ignore[attr-defined]
    c_make_encoder,
    encode_basestring,
    encode_basestring_ascii,
)
from typing import Any, Callable

from potstill.utils.fingerprint import stable_text

CANONICAL_FORMAT = 1
"""The version of the text `canonical_json` writes (see the module docstring)."""


def canonical_json(value: Any) -> str:
    """The canonical text of JSON-like data (see the module docstring).

    Args:
        value: dicts, lists, tuples (written as lists), strings, numbers, booleans and
            `None`, possibly holding callables or other objects (written as text).

    Returns:
        The text, ASCII only.
    """
    try:
        return _encode(value)
    except TypeError:  # a mapping mixes key types (`{1: ..., "a": ...}`) and cannot be sorted
        return _encode(_text_keys(value))


def canonical_sha256(value: Any) -> Any:
    """`hashlib.sha256` of `canonical_json(value)`, fed a piece at a time: a long list (an
    inline dataset) is written a slice of rows at a time, so the whole text, megabytes for
    100,000 rows, never exists at once (the C allocator would keep that memory).

    Args:
        value: as for `canonical_json`.

    Returns:
        The hash object (call `hexdigest()`).
    """
    digest = hashlib.sha256()
    try:
        for piece in _pieces(value):
            digest.update(piece.encode("ascii"))
    except TypeError:  # a mapping that cannot be sorted: the whole text, keys as text
        digest = hashlib.sha256(canonical_json(value).encode("ascii"))
    return digest


_SLICE = 1000  # list items written together by `_pieces`


def _pieces(value: Any) -> Iterator[str]:
    """`canonical_json(value)` in pieces whose concatenation is that text."""
    if isinstance(value, dict) and all(type(key) is str for key in value):
        yield "{"
        for position, key in enumerate(sorted(value)):
            yield f"{', ' if position else ''}{encode_basestring_ascii(key)}: "
            yield from _pieces(value[key])
        yield "}"
    elif isinstance(value, (list, tuple)) and len(value) > _SLICE:
        for start in range(0, len(value), _SLICE):
            text = _encode(list(value[start : start + _SLICE]))
            yield ("[" if start == 0 else ", ") + text[1:-1]
        yield "]"
    else:
        yield _encode(value)


def one_shot_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode`, the same text, without the setup it redoes in Python on every call
    (about half its time for a short value: request keys and journal lines are encoded
    once per request).

    Args:
        encoder: the encoder (its options); one with `indent` is returned as it is.

    Returns:
        A function of a value to its JSON text.
    """
    if c_make_encoder is None or encoder.indent is not None:
        return encoder.encode
    quote = encode_basestring_ascii if encoder.ensure_ascii else encode_basestring
    options = (
        encoder.default,
        quote,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    shared = None if encoder.check_circular else c_make_encoder(None, *options)

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return quote(value)  # type: ignore[no-any-return]
        # Checking for cycles needs a fresh record of the containers being written.
        write = shared if shared is not None else c_make_encoder({}, *options)
        return "".join(write(value, 0))

    return encode


# One encoder for every call (`json.dumps` with options builds one per call; keys are hashed
# on the hot path of every request).
_ENCODER = json.JSONEncoder(sort_keys=True, default=stable_text)
_encode = one_shot_encoder(_ENCODER)


def _text_keys(value: Any) -> Any:
    """`value` with every mapping's keys turned into text, as JSON writes them."""
    if isinstance(value, dict):
        return {_key_text(key): _text_keys(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(item) for item in value]
    return value


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float, bool)) or key is None:
        return json.dumps(key)  # as JSON writes such keys: `1`, `2.5`, `true`, `null`
    return stable_text(key)
