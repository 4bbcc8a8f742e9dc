"""The notebook-facing API: one namespace over the modules that own each step, so a chapter reads
`study.pruning_grid(...)`, `study.run_pairs(...)`, `study.paper_table(...)`.

grids (which runs), execute (running them), results (loading them), tables and glue (showing them), selection
(choices on the validation split), docs (method cards).
"""

from __future__ import annotations

from .docs import method_card
from .execute import run_ids, run_labelled, run_pairs, run_seeds
from .glue import glue_allocation, glue_best, glue_board, glue_budget, glue_metrics, glue_ranking, glue_value
from .grids import (VARIANT_KEYS, ablation_group_pairs, ablation_pairs, check_seeds, check_sparsities, default_seeds,
                    dense_config, pruning_grid, sensitivity_pairs, variant_pairs, with_seeds)
from .results import (histories, histories_of, labelled_histories, labelled_summaries, layer_sparsity_of,
                      load_trained_model, summaries_of)
from .selection import best_by_validation, validation_delta_t
from .tables import (ablation_table, best_table, describe, metric_summary, paper_reference, paper_table, size_table,
                     sensitivity_table, sparsity_levels_table, variant_table)

__all__ = [
    "method_card", "run_ids", "run_labelled", "run_pairs", "run_seeds", "glue_allocation", "glue_best", "glue_board", "glue_budget",
    "glue_metrics", "glue_ranking", "glue_value", "VARIANT_KEYS", "ablation_group_pairs", "ablation_pairs",
    "check_seeds", "check_sparsities", "default_seeds", "dense_config", "pruning_grid", "sensitivity_pairs",
    "variant_pairs", "with_seeds", "histories", "histories_of", "labelled_histories", "labelled_summaries",
    "layer_sparsity_of", "load_trained_model", "summaries_of", "best_by_validation", "validation_delta_t",
    "ablation_table", "best_table", "describe", "metric_summary", "paper_reference", "paper_table", "size_table",
    "sensitivity_table", "sparsity_levels_table", "variant_table",
]
