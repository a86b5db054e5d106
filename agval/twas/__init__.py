"""TWAS / fine-mapping concordance pipeline (STUDIES.md §2): plain functions, no Prefect.

The steps, in the order ``flows/twas.py`` runs them:

1. :mod:`agval.twas.inputs` - SuSiE files, FUSION ``.dat`` files, the tissue map (tissues
   missing from it: error or counted drop), SuSiE retention (``cs >= 0`` or
   ``pip > 0.01``), the TWAS significance filter (``TWAS.P < 4.7e-6``);
2. :mod:`agval.twas.gwas` - the GWAS rows of the retained rsIDs (streamed), oriented to
   ALT through the allele lookup and :func:`agval.alleles.harmonize.harmonize`;
3. :mod:`agval.twas.triplets` - (variant, gene, tissue) triplets, the distinct variants to
   score, per-assay scores (RNA_SEQ gene-mask on the tissue's GTEx track; ATAC / DNASE /
   CAGE centre-mask on the tissue's ontology terms; raw scores by default) and the long
   triplet table the statistics take;
4. :mod:`agval.twas.analysis` - Q1-Q4 (:mod:`agval.stats.twas`) and ``metrics.json``;
5. :mod:`agval.twas.figures` - the §2.8 figures.
"""

from agval.twas.analysis import (QuestionSeeds, build_metrics, data_summary, headline, run_q1, run_q2, run_q3,
                                 run_q4)
from agval.twas.gwas import GWAS_CONVENTION, one_row_per_rsid, orient_gwas, read_gwas_for
from agval.twas.inputs import (DEFAULT_PIP_THRESHOLD, check_tissues, dedupe_twas_pairs, expand_paths,
                               load_susie_files, load_twas_files, resolve_tissue_map, retain_susie,
                               significant_pairs)
from agval.twas.triplets import (ASSAY_LABELS, TRIPLET_TABLE_COLUMNS, assay_label, assay_scores, attach_scores,
                                 build_triplets, output_type_of, track_coverage, variants_to_score)

__all__ = [
    "DEFAULT_PIP_THRESHOLD", "expand_paths", "load_susie_files", "load_twas_files", "check_tissues",
    "dedupe_twas_pairs", "retain_susie", "significant_pairs", "resolve_tissue_map",
    "GWAS_CONVENTION", "read_gwas_for", "orient_gwas", "one_row_per_rsid",
    "ASSAY_LABELS", "TRIPLET_TABLE_COLUMNS", "assay_label", "output_type_of", "build_triplets",
    "variants_to_score", "assay_scores", "attach_scores", "track_coverage",
    "QuestionSeeds", "run_q1", "run_q2", "run_q3", "run_q4", "data_summary", "build_metrics", "headline",
]
