"""`DeitaFiltering`: keeps the best-scored rows whose embeddings are far from every other's.

The filtering of "What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data
Selection in Instruction Tuning" (Liu et al., 2023, https://arxiv.org/abs/2312.15685).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from potstill.errors import PotstillUserError
from potstill.mixins.runtime_parameters import RuntimeParameter
from potstill.steps.base import GlobalStep
from potstill.steps.row_checks import require_columns
from potstill.steps.typing import StepColumns, StepInput, StepOutput
from potstill.typing import Row

if TYPE_CHECKING:
    import numpy as np

_SCORES = ("evol_instruction_score", "evol_response_score")
_BLOCK_ELEMENTS = 1 << 24  # floats per block of the distance computation (128 MiB)


class DeitaFiltering(GlobalStep):
    """Selects up to `data_budget` rows: best DEITA score first, skipping rows whose nearest
    neighbour (by embedding) is closer than `diversity_threshold`.

    The DEITA score of a row is `evol_instruction_score * evol_response_score`; when one of
    them is missing (None) the other is used alone, and when both are, the score is 0 (each
    case logs a warning). The distance to the nearest neighbour is computed over all the
    rows, with numpy: cosine distance (`1 - u.v` on the normalised embeddings) or manhattan
    distance. With `normalize_embeddings=False` the embeddings are used as given, so for
    `cosine` they should already have unit length. A single row has no neighbour: its
    distance is infinite, so it passes.

    Input columns: `evol_instruction_score` and `evol_response_score` (from
    `ComplexityScorer` and `QualityScorer`), `embedding` (from `GenerateEmbeddings`).
    Output columns: `deita_score`, `deita_score_computed_with` (the score columns used),
    `nearest_neighbor_distance`. Rows come out sorted by `deita_score`, best first.

    Attributes:
        data_budget: how many rows to keep at most.
        diversity_threshold: the smallest distance to its nearest neighbour a row must have
            to be kept.
        normalize_embeddings: scale each embedding to unit length first.
        distance_metric: `cosine` or `manhattan`.
    """

    data_budget: RuntimeParameter[int] = Field(
        default=None, description="The desired size of the dataset after filtering."
    )
    diversity_threshold: RuntimeParameter[float] = Field(
        default=0.9,
        description="If a row has a distance with respect to its nearest neighbor greater than "
        "or equal to this value, it can be included in the filtered dataset.",
    )
    normalize_embeddings: RuntimeParameter[bool] = Field(
        default=True,
        description="Whether to normalize the embeddings before computing the distances.",
    )
    distance_metric: RuntimeParameter[Literal["cosine", "manhattan"]] = Field(
        default="cosine",
        description="The distance metric to use: 'cosine' or 'manhattan'.",
    )

    @property
    def inputs(self) -> StepColumns:
        """`evol_instruction_score`, `evol_response_score` and `embedding`."""
        return [*_SCORES, "embedding"]

    @property
    def outputs(self) -> StepColumns:
        """`deita_score`, `nearest_neighbor_distance` and `deita_score_computed_with`."""
        return ["deita_score", "nearest_neighbor_distance", "deita_score_computed_with"]

    def process(self, inputs: StepInput) -> StepOutput:
        """Yields the selected rows, best DEITA score first.

        Args:
            inputs: every row of the dataset.

        Yields:
            At most `data_budget` rows.
        """
        if self.data_budget is None:
            raise PotstillUserError(
                f"Step {self.name!r} needs `data_budget`, the number of rows to keep: pass "
                f"`data_budget=...` or `run(params={{{self.name!r}: {{'data_budget': ...}}}})`."
            )
        if not inputs:
            yield []
            return
        require_columns(self.name, inputs, ["embedding"])
        distances = self._nearest_neighbor_distances(inputs)
        scored = [
            {**row, **self._deita_score(row), "nearest_neighbor_distance": float(distance)}
            for row, distance in zip(inputs, distances)
        ]
        scored.sort(key=lambda row: row["deita_score"], reverse=True)
        kept = [
            row for row in scored if row["nearest_neighbor_distance"] >= self.diversity_threshold
        ]
        yield kept[: self.data_budget]

    def _deita_score(self, row: Row) -> dict[str, Any]:
        present = [column for column in _SCORES if row.get(column) is not None]
        if len(present) < len(_SCORES):
            self.logger.warning(
                "A row has no %s: its DEITA score uses %s.",
                " or ".join(c for c in _SCORES if c not in present),
                " and ".join(present) if present else "0",
            )
        score: float = 0
        if present:
            score = 1
            for column in present:
                score *= row[column]
        return {"deita_score": score, "deita_score_computed_with": present}

    def _nearest_neighbor_distances(self, rows: list[Row]) -> np.ndarray:
        import numpy as np

        embeddings = self._embeddings(rows)
        if self.normalize_embeddings:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.where(norms == 0, 1, norms)
        count, width = embeddings.shape
        # Row blocks keep the distance matrix (and manhattan's differences) in bounded memory.
        block = max(
            1, _BLOCK_ELEMENTS // (count * (width if self.distance_metric == "manhattan" else 1))
        )
        nearest = np.empty(count)
        for start in range(0, count, block):
            part = embeddings[start : start + block]
            if self.distance_metric == "cosine":
                distances = 1 - part @ embeddings.T
            else:
                distances = np.abs(part[:, None, :] - embeddings[None, :, :]).sum(axis=-1)
            rows_here = np.arange(len(part))
            distances[rows_here, start + rows_here] = np.inf  # a row is not its own neighbour
            nearest[start : start + len(part)] = distances.min(axis=1)
        return nearest

    def _embeddings(self, rows: list[Row]) -> np.ndarray:
        import numpy as np

        sizes = {len(row["embedding"]) if row["embedding"] is not None else None for row in rows}
        if None in sizes or len(sizes) != 1:
            raise PotstillUserError(
                f"Step {self.name!r}: every row needs an `embedding` of the same length, got "
                f"lengths {sorted(sizes, key=str)}. Drop the rows whose embedding failed first."
            )
        return np.asarray([row["embedding"] for row in rows], dtype=np.float64)
