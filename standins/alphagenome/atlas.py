"""The stand-in AlphaGenome ``AtlasService`` (SIMULATED; not product code).

Precomputed-style SNV scores served through the SDK's generated ``AtlasServiceServicer``,
so the unmodified ``alphagenome.atlas.atlas.AtlasClient`` works against it. Scores are
computed on demand with the DNA service's model (ALL_FOLDS weights of the server's
revision) on the 1 Mb interval centred on the variant, so they equal what
``score_variant`` returns for that interval and the recommended scorer.

* ``ListVariantScoresMetadata``: one entry per served recommended scorer (name,
  ``is_signed``, track metadata; gene scorers list merged, unstranded tracks).
* ``GetDenseVariantScores``: one SNV; REF must match the genome (else INVALID_ARGUMENT,
  which the client raises as ValueError).
* ``ListDenseVariantScores``: every SNV of an interval (3 per position, ALT in A, C, G, T
  order), paged (``page_size``, default ``StandinConfig.atlas_page_size``; opaque
  ``page_token``).
* The AIP-160 filter built by ``atlas_utils.build_filter`` is honoured: scorer names,
  ontology terms (tracks of scorers whose tracks carry ontology terms are restricted to
  those terms, as the client's ``_filter_scorer_metadata`` expects) and gene ids/names.
* The ``x-goog-fieldmask`` header is honoured (the client's batch calls leave out the
  per-variant track metadata).

Only Homo sapiens (as the SDK's AtlasClient asks); SNVs only.
"""

from __future__ import annotations

import base64
import re

import grpc
import numpy as np
from alphagenome.models.v1 import variant_scorers as vs_lib
from alphagenome.protos import atlas_service_pb2 as apb
from alphagenome.protos import atlas_service_pb2_grpc as agrpc
from alphagenome.protos.v1 import dna_model_pb2 as pb

from agval.coords import Variant
from standins.alphagenome.faults import Abort
from standins.alphagenome.servicer import (DEFAULT_MODEL_VERSION, CallRecord, Runtime, ScorerSpec, StandinCore,
                                           parse_scorer)

ATLAS_INTERVAL = 1 << 20
MAX_PAGE_SIZE = 1000
_BASES = "ACGT"

_RE_SCORER = re.compile(r'scores\.variant_scorer\.name\s*=\s*"([^"]*)"')
_RE_ONTOLOGY = re.compile(r"scores\.metadata\.tracks\.metadata\.ontology_term\.ontology_type\s*=\s*(\w+)\s+AND\s+"
                          r"scores\.metadata\.tracks\.metadata\.ontology_term\.id\s*=\s*(\d+)")
_RE_GENE_ID = re.compile(r'scores\.metadata\.gene_scorers\.metadata\.gene_id\s*=\s*"([^"]*)"')
_RE_GENE_NAME = re.compile(r'scores\.metadata\.gene_scorers\.metadata\.name\s*=\s*"([^"]*)"')


def served_scorers() -> dict[str, ScorerSpec]:
    """Recommended scorer name -> spec, for the scorers the stand-in computes."""
    out = {}
    for name, scorer in vs_lib.RECOMMENDED_VARIANT_SCORERS.items():
        try:
            out[name] = parse_scorer(scorer.to_proto())
        except Abort:
            continue
    return out


class AtlasFilter:
    """The parts of an AIP-160 filter string the SDK's ``build_filter`` produces."""

    def __init__(self, text: str):
        self.text = text or ""
        self.scorers = _RE_SCORER.findall(self.text)
        self.curies = None
        pairs = _RE_ONTOLOGY.findall(self.text)
        if pairs:
            curies = set()
            for typ, ident in pairs:
                prefix = typ.removeprefix("ONTOLOGY_TYPE_")
                curies.add(f"{prefix}:{int(ident):07d}")
            self.curies = curies
        self.gene_ids = set(_RE_GENE_ID.findall(self.text))
        self.gene_names = set(_RE_GENE_NAME.findall(self.text))
        leftovers = self.text
        for rx in (_RE_SCORER, _RE_ONTOLOGY, _RE_GENE_ID, _RE_GENE_NAME):
            leftovers = rx.sub("", leftovers)
        leftovers = re.sub(r"-scores\.metadata\.tracks\.metadata\.ontology_term:\*", "", leftovers)
        leftovers = re.sub(r"\b(AND|OR)\b|[()\s]", "", leftovers)
        if leftovers:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter expression: {self.text!r}")

    def gene_ok(self, gene_id: str, name: str) -> bool:
        if not self.gene_ids and not self.gene_names:
            return True
        return (gene_id in self.gene_ids or gene_id.split(".")[0] in {g.split(".")[0] for g in self.gene_ids}
                or name in self.gene_names)


def _mask_tree(paths: list[str]) -> dict:
    tree: dict = {}
    for p in paths:
        node = tree
        for part in p.strip().split("."):
            if not part:
                continue
            node = node.setdefault(part, {})
        node["*"] = {}
    return tree


def _prune(msg, tree: dict) -> None:
    """Keep only the fields named in a field-mask ``tree`` (repeated messages element-wise)."""
    if "*" in tree:
        return
    for fd, _ in list(msg.ListFields()):
        sub = tree.get(fd.name)
        if sub is None:
            msg.ClearField(fd.name)
        elif fd.message_type is not None and "*" not in sub:
            if fd.is_repeated:
                for el in getattr(msg, fd.name):
                    _prune(el, sub)
            else:
                _prune(getattr(msg, fd.name), sub)


def field_mask(context) -> dict | None:
    for k, v in context.invocation_metadata() or ():
        if k.lower() == "x-goog-fieldmask":
            return _mask_tree(str(v).split(","))
    return None


class AtlasService(agrpc.AtlasServiceServicer):
    """The stand-in AtlasService (shares the DNA service's core, call log and faults)."""

    def __init__(self, core: StandinCore, runtime: Runtime):
        self.core = core
        self.runtime = runtime
        self.scorers = served_scorers()

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _organism(value: int) -> str:
        if value != pb.ORGANISM_HOMO_SAPIENS:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "the Atlas covers ORGANISM_HOMO_SAPIENS only")
        return "HOMO_SAPIENS"

    def _selected(self, flt: AtlasFilter) -> list[tuple[str, ScorerSpec]]:
        if not flt.scorers:
            return list(self.scorers.items())
        unknown = [s for s in flt.scorers if s not in self.scorers]
        if unknown:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unknown variant scorer(s) {unknown}; served: {', '.join(self.scorers)}")
        return [(s, self.scorers[s]) for s in dict.fromkeys(flt.scorers)]

    def _track_selection(self, organism: str, spec: ScorerSpec, curies: set[str] | None):
        """(column indices into the merged/center track list, TracksMetadata protos)."""
        merged = spec.kind == "gene_mask_lfc"
        protos = self.core.track_protos(organism, spec.output_type, merged=merged)
        if curies is None:
            return np.arange(len(protos)), protos
        from alphagenome.data import ontology

        have = [ontology.from_proto(p.ontology_term).ontology_curie if p.HasField("ontology_term") else None
                for p in protos]
        if not any(h is not None for h in have):  # scorer without ontology metadata: unfiltered
            return np.arange(len(protos)), protos
        idx = np.array([i for i, h in enumerate(have) if h in curies], dtype=int)
        return idx, [protos[i] for i in idx]

    def _dense(self, var: Variant, organism: str, flt: AtlasFilter, mask: dict | None) -> apb.DenseVariantScores:
        core = self.core
        half = ATLAS_INTERVAL // 2
        start = var.start0 - half
        end = start + ATLAS_INTERVAL
        iv = pb.Interval(chromosome=var.chrom, start=start, end=end, strand=pb.STRAND_UNSTRANDED)
        out = apb.DenseVariantScores(
            variant=pb.Variant(chromosome=var.chrom, position=var.pos, reference_bases=var.ref,
                               alternate_bases=var.alt),
            interval=iv)
        for name, spec in self._selected(flt):
            raw, gids = core.score(DEFAULT_MODEL_VERSION, organism, var, (var.chrom, start, end), spec)
            q = core.quantiles(DEFAULT_MODEL_VERSION, organism, spec, raw)
            metadata = []
            if spec.kind == "gene_mask_lfc":
                raw, q = core.merge(organism, spec, gids, raw, q)
                keep = [i for i, g in enumerate(gids) if flt.gene_ok(g, core._gene_info[g]["gene_name"])]
                raw, q = raw[keep], q[keep]
                genes = apb.GeneScorersMetadata(metadata=core.gene_protos([gids[i] for i in keep]))
                metadata.append(apb.Metadata(gene_scorers=genes))
            idx, tracks = self._track_selection(organism, spec, flt.curies)
            raw, q = raw[:, idx], q[:, idx]
            metadata.insert(0, apb.Metadata(tracks=pb.TracksMetadata(metadata=tracks)))
            out.scores.append(apb.DenseVariantScore(
                variant_scorer=apb.VariantScorerInfo(name=name, is_signed=spec.signed),
                metadata=metadata, shape=list(raw.shape),
                scores=np.ascontiguousarray(raw, dtype="<f4").tobytes(),
                calibrated_scores=np.ascontiguousarray(q, dtype="<f4").tobytes()))
        if mask is not None:
            _prune(out, mask)
        return out

    # ------------------------------------------------------------ RPCs
    def ListVariantScoresMetadata(self, request, context):  # noqa: N802
        return self.runtime.run_unary("ListVariantScoresMetadata", request, context, self._list_metadata)

    def _list_metadata(self, request, rec: CallRecord):
        rec.organism = organism = self._organism(request.organism)
        resp = apb.ListVariantScoresMetadataResponse()
        for name, spec in self.scorers.items():
            tracks = self.core.track_protos(organism, spec.output_type, merged=spec.kind == "gene_mask_lfc")
            resp.variant_scorer_metadata.append(apb.VariantScorerMetadata(
                variant_scorer=apb.VariantScorerInfo(name=name, is_signed=spec.signed),
                metadata=[apb.Metadata(tracks=pb.TracksMetadata(metadata=tracks))]))
        return resp

    def GetDenseVariantScores(self, request, context):  # noqa: N802
        mask = field_mask(context)
        return self.runtime.run_unary("GetDenseVariantScores", request, context,
                                      lambda req, rec: self._get(req, rec, mask))

    def _get(self, request, rec: CallRecord, mask):
        rec.organism = organism = self._organism(request.organism)
        rec.model_version = DEFAULT_MODEL_VERSION
        rec.n_variants = 1
        v = request.variant
        rec.variant = f"{v.chromosome}:{v.position}:{v.reference_bases}>{v.alternate_bases}"
        flt = AtlasFilter(request.filter)
        var = self.core.check_variant(v)
        if not var.is_snv:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the Atlas holds SNVs only; {var.key} is an indel (score it live)")
        if var.key in self.runtime.poison:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"variant {var.key} cannot be scored (poison variant, stand-in fault injection)",
                        injected=True)
        rec.n_outputs = len(self._selected(flt))
        return self._dense(var, organism, flt, mask)

    def ListDenseVariantScores(self, request, context):  # noqa: N802
        mask = field_mask(context)
        return self.runtime.run_unary("ListDenseVariantScores", request, context,
                                      lambda req, rec: self._list(req, rec, mask))

    def _list(self, request, rec: CallRecord, mask):
        rec.organism = organism = self._organism(request.organism)
        rec.model_version = DEFAULT_MODEL_VERSION
        iv = request.interval
        rec.interval = f"{iv.chromosome}:{iv.start}-{iv.end}"
        core = self.core
        if iv.chromosome not in core.chrom_lengths:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown chromosome {iv.chromosome!r}")
        start, end = max(0, int(iv.start)), min(int(iv.end), core.chrom_lengths[iv.chromosome])
        if end <= start:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"empty interval {rec.interval}")
        flt = AtlasFilter(request.filter)
        size = request.page_size or core.config.atlas_page_size
        if size < 0:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        size = min(size, MAX_PAGE_SIZE)
        scope = f"{iv.chromosome}:{start}-{end}|{request.filter}"
        offset = 0
        if request.page_token:
            try:
                tok_scope, tok_off = base64.urlsafe_b64decode(request.page_token.encode()).decode().rsplit("|@", 1)
                offset = int(tok_off)
                if tok_scope != scope:
                    raise ValueError("scope")
            except Exception:  # noqa: BLE001
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                            "invalid page_token (it belongs to another interval or filter)") from None
        seq = core.genome.fetch(iv.chromosome, start, end)
        snvs = [(start + i + 1, b, a) for i, b in enumerate(seq) if b in _BASES for a in _BASES if a != b]
        page = snvs[offset:offset + size]
        rec.n_variants = len(page)
        rec.n_outputs = len(self._selected(flt))
        resp = apb.ListDenseVariantScoresResponse(interval=iv)
        for pos, ref, alt in page:
            resp.variant_scores.append(self._dense(Variant(iv.chromosome, pos, ref, alt), organism, flt, None))
        if offset + size < len(snvs):
            resp.next_page_token = base64.urlsafe_b64encode(f"{scope}|@{offset + size}".encode()).decode()
        if mask is not None:
            _prune(resp, mask)
        return resp
