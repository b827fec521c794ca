"""A wire-compatible fake LLM API server for tests and benchmarks.

Start it in-process with :class:`FakeServer`, or as a subprocess with
``python -m tests.fake_server --port 0``. See :mod:`tests.fake_server.app` for
how provider plug-ins are registered.
"""

from .answers import answer_for, count_tokens
from .behaviour import Fault
from .server import FakeServer
from .state import RecordedRequest, ServerState

__all__ = ["FakeServer", "Fault", "RecordedRequest", "ServerState", "answer_for", "count_tokens"]
