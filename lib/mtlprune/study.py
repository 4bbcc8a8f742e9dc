"""The notebook-facing API: one namespace over the modules that own each step, so a chapter reads
`study.pruning_grid(...)`, `study.run_pairs(...)`, `study.paper_table(...)`.

grids (which runs), execute (running them), results (loading them), tables and glue (showing them), docs (method
cards). The evidence (intervals, controls, verdicts) is `evidence`, `plan` and `findings`.
"""

from __future__ import annotations

from .docs import method_card
from .execute import precision_control, run_ids, run_labelled, run_pairs, run_seeds
from .glue import glue_board, glue_budget, glue_metrics, glue_plateau, glue_precision, glue_rows, glue_value
from .grids import (VARIANT_KEYS, ablation_group_pairs, ablation_pairs, check_seeds, check_sparsities, default_seeds,
                    dense_config, pruning_grid, sensitivity_pairs, variant_pairs)
from .results import (histories, histories_of, labelled_histories, labelled_summaries, layer_sparsity_of,
                      load_trained_model, summaries_of)
from .tables import (ablation_table, dataset_table, describe, metric_summary, paper_beside_ours, paper_reference, paper_table,
                     sensitivity_table, show, size_table, sparsity_levels_table)

__all__ = [
    "method_card", "precision_control", "run_ids", "run_labelled", "run_pairs", "run_seeds", "glue_board", "glue_budget", "glue_metrics", "glue_plateau",
    "glue_precision",
    "glue_rows", "glue_value", "VARIANT_KEYS", "ablation_group_pairs", "ablation_pairs", "check_seeds",
    "check_sparsities", "default_seeds", "dense_config", "pruning_grid", "sensitivity_pairs", "variant_pairs",
    "histories", "histories_of", "labelled_histories", "labelled_summaries", "layer_sparsity_of", "load_trained_model",
    "summaries_of", "ablation_table", "dataset_table", "describe", "metric_summary", "paper_beside_ours", "paper_reference",
    "paper_table", "size_table", "sensitivity_table", "sparsity_levels_table", "show",
]
