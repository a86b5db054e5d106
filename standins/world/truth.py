"""Ground truth of the synthetic world: the effects the study generators plant (SIMULATED).

The truth model is :class:`standins.seqmodel.SequenceModel` with the world's
``truth.json`` parameters, scored with exactly the arithmetic the stand-in service uses
(:mod:`standins.scoring_math`), on the world's reference genome.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from agval.coords import Variant
from standins.catalogue import model_curies, world_catalogue_kind
from standins.scoring_math import LocalScorer, VariantScores
from standins.seqmodel import SequenceModel


class TruthOracle:
    """Planted effects. Variants are :class:`agval.coords.Variant` (1-based, REF must be
    the genome's); ``tracks`` are rows of ``world.tracks`` (any polars frame with
    ``output_type``, ``ontology_curie`` and optional ``histone_mark``,
    ``transcription_factor``, ``strand``). In a world built with the real catalogue,
    tracks map onto model contexts as in the stand-in (``standins.catalogue.model_curie``)."""

    def __init__(self, world):
        self.world = world
        self.model = SequenceModel(world.truth)
        self.scorer = LocalScorer(self.model, world.genome, world.genes, world.exons)
        self._kind = world_catalogue_kind(getattr(world, "meta", None))

    def _ctx(self, tracks):
        """``tracks`` as the scorer takes them (model contexts for a real-catalogue world)."""
        if self._kind != "real" or isinstance(tracks, list):
            return tracks
        return self.model.contexts_of(tracks, model_curies(tracks, self._kind))

    def _ctx_list(self, tracks) -> list:
        c = self._ctx(tracks)
        return c if isinstance(c, list) else self.model.contexts_of(c)

    def variant_effect(self, variant: Variant, tracks: pl.DataFrame) -> np.ndarray:
        """True centre-mask DIFF_LOG2_SUM per track, float64 ``[n_tracks]`` (width 501,
        2001 for CHIP_HISTONE; NaN for RNA_SEQ tracks, which are gene-level)."""
        return self.scorer.center_scores(variant, self._ctx(tracks))

    def gene_effect(self, variant: Variant, gene_id: str, tracks: pl.DataFrame) -> np.ndarray:
        """True gene-mask LFC (natural log) of ``gene_id`` over all its exons, float64
        ``[n_tracks]`` (computed for every track given; meaningful for RNA_SEQ)."""
        return self.scorer.gene_lfc(variant, gene_id, self._ctx(tracks))

    def score(self, variant: Variant, tracks: pl.DataFrame,
              interval: tuple[int, int] | None = None) -> VariantScores:
        """Everything the stand-in would compute, but with the truth parameters."""
        return self.scorer.score(variant, self._ctx(tracks), interval)

    def sequence_tracks(self, seq: str, tracks: pl.DataFrame) -> np.ndarray:
        """Per-base truth signal, float32 ``[len(seq), n_tracks]``."""
        return self.model.tracks_for_contexts(seq, self._ctx_list(tracks))

    def sequence_activity(self, seq: str, tracks: pl.DataFrame, window: tuple[int, int] | None = None) -> np.ndarray:
        """Mean truth signal per track over ``seq[window[0]:window[1]]`` (0-based half-open;
        default the whole sequence), float64 ``[n_tracks]``. For MPRA-style activities."""
        sig = self.model.tracks_for_contexts(seq, self._ctx_list(tracks)).astype(np.float64)
        a, b = window if window is not None else (0, len(seq))
        return sig[a:b].mean(axis=0)
