"""MPRA benchmark building blocks (STUDIES.md §3; pitfalls P16-P20, P24-P26). No Prefect.

The flow ``flows/mpra.py`` strings these together like a methods section:

1. :func:`agval.mpra.measurements.load_measurements`: counts -> per-construct
   ``log2((RNA + pc) / (DNA + pc))`` with filters whose effect is reported (P26);
2. :func:`agval.mpra.sequences.prepare_inserts` + :func:`~agval.mpra.sequences.build_sequences`:
   the element (oligo, locus 16-mer or reference bases) centred in a supported length
   (16,384 bp by default) inside its reference flanks or the fixed neutral backbone
   (:mod:`agval.mpra.backbone`), genomic + orientation; N and unsupported lengths are
   refused (P16, P18); one ``input_id`` per distinct model input;
3. prediction (``agval.scoring.predict_sequences``: one call per distinct input, all
   outputs, cached), or the precomputed path (:mod:`agval.mpra.predictions`);
4. :func:`agval.mpra.aggregates.aggregate_run`: per-track and pooled centred-window and
   whole-sequence means, per strand for stranded tracks (P25);
5. :mod:`agval.mpra.analysis`: statistics with cluster-aware inference (P17);
   :mod:`agval.mpra.effects`: wild type vs mutant deltas with an asserted merge (P19).
"""

from agval.mpra.aggregates import aggregate_columns, aggregate_run, assay_name, center_bounds, choose_bin_size
from agval.mpra.backbone import BACKBONE_SEED, BACKBONE_VERSION, backbone_info, neutral_backbone
from agval.mpra.effects import effects_long, wt_mutant_effects
from agval.mpra.measurements import Measurements, load_measurements, tf_tokens
from agval.mpra.predictions import attach_predictions, load_predictions, measured_from_predictions
from agval.mpra.sequences import (SUPPORTED_LENGTHS, BuiltSequences, build_sequences, check_length,
                                  embed_in_backbone, embed_in_reference, insert_bounds, prepare_inserts)


class PseudoReplicationWarning(UserWarning):
    """Rows far outnumber distinct model inputs: row-level p-values are anti-conservative (P17)."""


__all__ = ["aggregate_columns", "aggregate_run", "assay_name", "center_bounds", "choose_bin_size",
           "BACKBONE_SEED", "BACKBONE_VERSION", "backbone_info", "neutral_backbone", "effects_long",
           "wt_mutant_effects", "Measurements", "load_measurements", "tf_tokens", "attach_predictions",
           "load_predictions", "measured_from_predictions", "SUPPORTED_LENGTHS", "BuiltSequences",
           "build_sequences", "check_length", "embed_in_backbone", "embed_in_reference", "insert_bounds",
           "prepare_inserts", "PseudoReplicationWarning"]
