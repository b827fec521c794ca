"""distilabel's module for its local `Pipeline`, where its docs import it from.

potstill has one pipeline class, which runs in the calling process; it is defined in
`potstill.pipeline.base`, and a config whose `type_info` names this module loads it too.
"""

from potstill.pipeline.base import Pipeline

__all__ = ["Pipeline"]
