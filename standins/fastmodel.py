"""Batched evaluation of the synthetic sequence model for the stand-in service (SIMULATED).

:class:`standins.seqmodel.SequenceModel` computes one track context at a time, which is
fine for the demo's ~50 contexts but not for the real 5,563-track catalogue. This module
computes the same model **vectorised over contexts**:

* :class:`BatchModel` ``.tracks(seq, contexts) -> float32 [len(seq), n_contexts]``: the
  model's per-base signal for many contexts at once. Intermediate signals (accessibility,
  promoter activity, transcription) are computed once per distinct CURIE as 2-D arrays
  ``[n_curies, len(seq)]`` and combined per context; the arithmetic mirrors
  ``SequenceModel`` (same fixed-point box filters), so values agree with it to float
  rounding (tests: ``tests/standins/test_fastmodel.py``).
* :class:`GeneMaskEngine`: the RNA_SEQ gene-mask LFC of a variant for every context
  without building per-base RNA signals over ~30 kb windows. Transcription is a sum of
  one-sided box filters of promoter activity (``TSS``), so a gene's exon sum is
  ``sum_q TSS[q] * K[q]`` with a context-free kernel ``K`` made from the gene's exon mask.
  REF exon sums are computed once per gene (cached); for a substitution only ``TSS``
  within the model's promoter reach of the allele changes, so the ALT - REF exon sum is
  ``sum_q dTSS[q] * K[q]`` over ~3.3 kb. Indels use ~15 kb of TSS around the allele with
  ALT aligned to REF as :func:`standins.scoring_math.align_alt_to_ref` does.

Shapes: ``seq`` is a DNA string; contexts are :class:`standins.seqmodel.TrackContext`;
positions are 0-based; intervals half-open.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from standins.seqmodel import (_MARK_KINDS, MARKS, R_ACC, R_ENH, R_PROM, R_TF, RNA_STEPS, SequenceModel, TrackContext,
                               _hash_int, _quantize, _SCALE)

# --------------------------------------------------------------------------- row-wise exact box filters


def _box_sums_rows(x: np.ndarray, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Row-wise :func:`standins.seqmodel._box_sums`: ``x`` float ``[R, n]``; for each
    ``(left, right)`` ``out[:, i] = sum(x[:, i-left : i+right+1])`` (zero outside), on the
    same int64 fixed point, so each row equals the 1-D function's result bit for bit."""
    r, n = x.shape
    L = max(l for l, _ in spans)
    R = max(rr for _, rr in spans)
    cs = np.zeros((r, n + L + R + 1), dtype=np.int64)
    np.cumsum(_quantize(x), axis=1, out=cs[:, L + 1:L + 1 + n])
    cs[:, L + 1 + n:] = cs[:, L + n:L + n + 1]
    out = []
    for left, right in spans:
        d = cs[:, L + right + 1:L + right + 1 + n] - cs[:, L - left:L - left + n]
        out.append(d * (1.0 / _SCALE))
    return out


def _box_mean_rows(x: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return np.asarray(x, dtype=np.float64)
    out = _box_sums_rows(x, [(r, r)])[0]
    out *= 1.0 / (2 * r + 1)
    return out


def _tri_peak_rows(x: np.ndarray, radius: int) -> np.ndarray:
    h = max(radius // 2, 0)
    return _box_sums_rows(_box_mean_rows(x, h), [(h, h)])[0]


def _tri_mean_rows(x: np.ndarray, radius: int) -> np.ndarray:
    h = max(radius // 2, 0)
    return _box_mean_rows(_box_mean_rows(x, h), h)


#: gemm sizes (m * n * k) up to which OpenBLAS stays single-threaded: bigger products are
#: split by columns, because a multi-threaded BLAS call from many server threads on a
#: loaded machine is ~30x slower than a single-threaded one
_GEMM_SINGLE = 250_000


def _mm(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``w @ x`` (``[m, k] @ [k, n]``) in column blocks small enough for one BLAS thread."""
    m, k = w.shape
    n = x.shape[1]
    step = max(1, _GEMM_SINGLE // max(1, m * k))
    if n <= step:
        return w @ x
    out = np.empty((m, n))
    for a in range(0, n, step):
        np.matmul(w, x[:, a:a + step], out=out[:, a:a + step])
    return out


def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` in place (``x`` is float64; exact to rounding, no overflow)."""
    big = x > 30.0
    if big.any():
        keep = x[big]
        np.minimum(x, 30.0, out=x)
        np.exp(x, out=x)
        np.log1p(x, out=x)
        x[big] = keep + np.log1p(np.exp(-keep))
        return x
    np.exp(x, out=x)
    return np.log1p(x, out=x)


# --------------------------------------------------------------------------- the batched model

class BatchModel:
    """The :class:`SequenceModel` ``model`` evaluated for many contexts at once. Thread-safe."""

    def __init__(self, model: SequenceModel):
        self.model = model
        self.p = model.params
        K = len(self.p.motifs)
        self.n_motifs = K
        self._lens = np.array([lut[0] for lut in model._motif_luts], dtype=np.int64)
        self._thr = np.array([lut[1] for lut in model._motif_luts], dtype=np.float64)
        n_chunks = max(len(lut[2]) for lut in model._motif_luts)
        self._n_chunks = n_chunks
        tabs = np.zeros((2, K, n_chunks, 625))
        for k, (_, _, lf, lr) in enumerate(model._motif_luts):
            for c in range(len(lf)):
                tabs[0, k, c] = lf[c]
                tabs[1, k, c] = lr[c]
        self._tabs = tabs.reshape(2, K * n_chunks * 625)
        self._w_lock = threading.Lock()
        self._weights: dict[str | None, tuple[np.ndarray, np.ndarray, float]] = {}
        self.acc_reach = model._reach_by_type["DNASE"]
        self.tss_reach = model._reach_by_type["CAGE"]

    # ------------------------------------------------------------------ parameters
    def weights(self, curies: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(acc [U, K], prom [U, K], bias [U])`` for the given CURIEs (in order)."""
        out = []
        for c in curies:
            w = self._weights.get(c)
            if w is None:
                cw = self.p.context(c)
                w = (np.asarray(cw.acc, dtype=np.float64), np.asarray(cw.prom, dtype=np.float64), float(cw.bias))
                with self._w_lock:
                    self._weights[c] = w
            out.append(w)
        return (np.stack([w[0] for w in out]), np.stack([w[1] for w in out]),
                np.array([w[2] for w in out], dtype=np.float64))

    # ------------------------------------------------------------------ motifs
    def occupancies(self, seq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fwd, rev, both)`` occupancy ``[K, len(seq)]`` float64, equal to
        ``SequenceModel._occupancies`` (every motif at once)."""
        codes, kmer, ncs = SequenceModel._encode(seq)
        n = codes.shape[0]
        K, C = self.n_motifs, self._n_chunks
        fwd = np.zeros((K, n))
        rev = np.zeros((K, n))
        lmin = int(self._lens.min())
        m = n - lmin + 1
        if m <= 0:
            return fwd, rev, np.maximum(fwd, rev)
        kpad = np.concatenate([kmer, np.full(4 * C + 4, 624, dtype=kmer.dtype)])
        base = (np.arange(K) * C)[:, None] * 625
        j = np.arange(m)
        valid = j[None, :] <= (n - self._lens)[:, None]                     # [K, m]
        end = np.minimum(j[None, :] + self._lens[:, None], n)
        has_n = (ncs[end] - ncs[np.minimum(j, n)][None, :]) > 0
        dead = ~valid | has_n
        beta = self.p.beta
        for tab, dest in ((self._tabs[0], fwd), (self._tabs[1], rev)):
            s = np.take(tab, base + kpad[None, 0:m])
            for c in range(1, C):
                s += np.take(tab, base + c * 625 + kpad[None, 4 * c:4 * c + m])
            s -= self._thr[:, None]
            s *= -beta
            np.exp(s, out=s)
            s += 1.0
            occ = np.reciprocal(s, out=s)
            occ[dead] = 0.0
            for k in range(K):
                L = int(self._lens[k])
                mk = n - L + 1
                if mk > 0:
                    dest[k, L // 2:L // 2 + mk] = occ[k, :mk]
        return fwd, rev, np.maximum(fwd, rev)

    # ------------------------------------------------------------------ per-base tracks
    def tracks(self, seq: str, contexts: list[TrackContext]) -> np.ndarray:
        """Per-base signal float32 ``[len(seq), len(contexts)]`` (>= 0), like
        ``SequenceModel.tracks_for_contexts``; identical contexts are computed once."""
        n = len(seq)
        out = np.zeros((n, len(contexts)), dtype=np.float32)
        if n == 0 or not contexts:
            return out
        uniq: dict[TrackContext, int] = {}
        idx = np.array([uniq.setdefault(c, len(uniq)) for c in contexts], dtype=np.int64)
        cols = _BatchState(self, seq, list(uniq)).compute()
        out[:] = cols[idx].T
        return out


class _BatchState:
    """Intermediate signals of one sequence for the CURIEs of a set of contexts."""

    def __init__(self, bm: BatchModel, seq: str, contexts: list[TrackContext]):
        self.bm = bm
        self.p = bm.p
        self.seq = seq
        self.n = len(seq)
        self.contexts = contexts
        self.curies = list(dict.fromkeys(c.curie for c in contexts))
        self.row = {c: i for i, c in enumerate(self.curies)}
        self.W_acc, self.W_prom, self.bias = bm.weights(self.curies)
        self._occ = None
        self._memo: dict = {}

    @property
    def occ(self):
        if self._occ is None:
            self._occ = self.bm.occupancies(self.seq)
        return self._occ

    def _get(self, key, fn):
        v = self._memo.get(key)
        if v is None:
            v = fn()
            self._memo[key] = v
        return v

    def acc(self) -> np.ndarray:
        def f():
            x = _tri_peak_rows(_mm(self.W_acc, self.occ[2]), R_ACC)
            x *= self.p.acc_gain
            x += self.bias[:, None]
            return _softplus(x)
        return self._get("acc", f)

    def prom(self, strand: str) -> np.ndarray:
        def f():
            mat = self.occ[0] if strand == "+" else self.occ[1]
            return _tri_peak_rows(_mm(self.W_prom, mat), R_PROM)
        return self._get(("prom", strand), f)

    def enh(self) -> np.ndarray:
        return self._get("enh", lambda: _box_mean_rows(self.acc(), R_ENH))

    def tss(self, strand: str) -> np.ndarray:
        def f():
            boost = self.enh() * self.p.enh_boost
            boost += 1.0
            boost *= self.acc()
            boost *= self.prom(strand)
            return boost
        return self._get(("tss", strand), f)

    def txn(self, strand: str) -> np.ndarray:
        def f():
            t = self.tss(strand)
            spans = [(n - 1, 0) if strand == "+" else (0, n - 1) for n, _ in RNA_STEPS]
            out = np.zeros(t.shape)
            for (length, w), bs in zip(RNA_STEPS, _box_sums_rows(t, spans)):
                out += bs * (w * 20.0 / length)
            return out
        return self._get(("txn", strand), f)

    def motif_peak(self, k: int) -> np.ndarray:
        return self._get(("tf", k), lambda: _tri_peak_rows(self.occ[2][k:k + 1], R_TF)[0])

    @staticmethod
    def strands(s):
        return ("+", "-") if s == "." else (s,)

    def compute(self) -> np.ndarray:
        """``[n_contexts, n]`` float64, clipped at 0 (the order of ``contexts``)."""
        p = self.p
        out = np.empty((len(self.contexts), self.n))
        for j, c in enumerate(self.contexts):
            u = self.row[c.curie]
            ot = c.output_type
            g = p.output_gains.get(ot, 1.0)
            if ot in ("ATAC", "DNASE"):
                v = g * self.acc()[u]
            elif ot in ("CAGE", "PROCAP"):
                v = g * (sum(self.tss(s)[u] for s in self.strands(c.strand)) + 0.002)
            elif ot == "CHIP_TF":
                tf = (c.transcription_factor or "").upper()
                if tf.startswith("POLR2A") or tf in ("TAF1", "TBP"):
                    both = (self.tss("+")[u] + self.tss("-")[u])[None, :]
                    v = g * (_tri_peak_rows(both, R_TF)[0] / (R_TF + 1) + 0.01)
                else:
                    names = [m.name.upper() for m in p.motifs]
                    k = names.index(tf) if tf in names else _hash_int(p.hash_salt, tf) % len(names)
                    v = g * (self.acc()[u] * self.motif_peak(k) + 0.01)
            elif ot == "CHIP_HISTONE":
                mark = c.histone_mark or "H3K27ac"
                kind, radius, _ = MARKS.get(mark, (_MARK_KINDS[_hash_int(p.hash_salt, mark) % 3], 1000, 1.0))
                mg = p.mark_gains.get(mark, 1.0) * g
                if kind == "active":
                    v = mg * (self._tri_mean(("acc",), u, radius) + 0.02)
                elif kind == "promoter":
                    v = mg * (self._tri_mean(("accprom",), u, radius) * 2.0 + 0.01)
                elif kind == "genebody":
                    v = mg * (self._tri_mean(("txn2",), u, radius) + 0.02)
                else:
                    v = mg * (1.0 / (1.0 + p.rep_k * self._tri_mean(("acc",), u, radius)) + 0.01)
            else:  # RNA_SEQ and other expression-like types
                v = g * (sum(self.txn(s)[u] for s in self.strands(c.strand)) + 0.001)
            np.maximum(v, 0.0, out=out[j])
        return out

    def _tri_mean(self, what: tuple, u: int, radius: int) -> np.ndarray:
        """Row ``u`` of ``tri_mean(base, radius)`` for all CURIEs at once (memoised)."""
        def base():
            if what[0] == "acc":
                return self.acc()
            if what[0] == "accprom":
                return self.acc() * (0.1 + (self.prom("+") + self.prom("-")))
            return self.txn("+") + self.txn("-")
        return self._get(("trimean", what, radius), lambda: _tri_mean_rows(base(), radius))[u]


# --------------------------------------------------------------------------- RNA_SEQ gene masks

_STEP_COEF = [(length, w * 20.0 / length) for length, w in RNA_STEPS]
_SPAN = max(length for length, _ in RNA_STEPS)


def _merge_blocks(blocks: np.ndarray) -> np.ndarray:
    """Sorted, merged ``[B, 2]`` half-open blocks (drops empty ones)."""
    b = np.asarray(blocks, dtype=np.int64).reshape(-1, 2)
    b = b[b[:, 1] > b[:, 0]]
    if not len(b):
        return b
    b = b[np.argsort(b[:, 0], kind="stable")]
    out = [list(b[0])]
    for s, e in b[1:].tolist():
        if s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return np.asarray(out, dtype=np.int64)


def exon_kernels(blocks: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K+, K-)`` float64 ``[hi - lo]`` for positions ``lo..hi-1``: the weight of
    ``TSS[q]`` in the sum over the exon bases (``blocks``, merged, half-open) of the
    ``+`` / ``-`` strand transcription signal (``SequenceModel`` RNA steps):
    ``K+[q] = sum_i c_i |E & [q, q+len_i)|``, ``K-[q] = sum_i c_i |E & (q-len_i, q]|``."""
    a, b = lo - _SPAN, hi + _SPAN
    ind = np.zeros(b - a + 2, dtype=np.int64)
    for s, e in blocks.tolist():
        s, e = max(s, a), min(e, b)
        if e > s:
            ind[s - a + 1] += 1
            ind[e - a + 1] -= 1
    cs = np.cumsum(np.cumsum(ind))  # cs[i] = exon bases in [a, a + i)
    q = np.arange(lo, hi) - a
    kp = np.zeros(hi - lo)
    km = np.zeros(hi - lo)
    for length, c in _STEP_COEF:
        kp += c * (cs[q + length] - cs[q])
        km += c * (cs[q + 1] - cs[q + 1 - length])
    return kp, km


class GeneMaskEngine:
    """Gene-mask LFC (RNA_SEQ) for many contexts, from exon-kernel sums (see module doc).

    ``fetch(chrom, start0, end0) -> str`` reads the genome (``N`` outside);
    ``exon_blocks``: gene id -> int ``[B, 2]`` 0-based half-open exons. Thread-safe; REF
    exon sums are kept in an LRU of ``cache_size`` genes.
    """

    PIECE = 1 << 14

    def __init__(self, bm: BatchModel, fetch, exon_blocks: dict[str, np.ndarray], cache_size: int = 4096):
        self.bm = bm
        self.p = bm.p
        self._fetch = fetch
        self._blocks = {g: _merge_blocks(b) for g, b in exon_blocks.items()}
        self._ref: OrderedDict = OrderedDict()
        self._key_locks: dict = {}
        self._lock = threading.Lock()
        self._cache_size = cache_size
        self.P = bm.tss_reach
        self.Ra = bm.acc_reach

    def blocks(self, gid: str, start: int, end: int) -> np.ndarray:
        """Merged exon blocks of ``gid`` clipped to ``[start, end)``."""
        b = self._blocks[gid]
        c = np.stack([np.maximum(b[:, 0], start), np.minimum(b[:, 1], end)], axis=1)
        return c[c[:, 1] > c[:, 0]]

    # ------------------------------------------------------------------ signals
    def _acc_prom(self, seq: str, W_acc, W_prom, bias):
        """acc ``[U, n]`` and prom ``(+, -)`` ``[U, n]`` of ``seq`` (valid beyond the acc reach of its ends)."""
        fwd, rev, both = self.bm.occupancies(seq)
        x = _mm(W_acc, _tri_peak_rows(both, R_ACC))
        x *= self.p.acc_gain
        x += bias[:, None]
        acc = _softplus(x)
        pp = _mm(W_prom, _tri_peak_rows(fwd, R_PROM))
        pm = _mm(W_prom, _tri_peak_rows(rev, R_PROM))
        return acc, pp, pm

    @staticmethod
    def _box_mean_at(x: np.ndarray, r: int, q0: int, m: int) -> np.ndarray:
        """``mean(x[:, q-r : q+r+1])`` (zero outside ``x``) for the ``m`` consecutive
        positions ``q = q0 .. q0+m-1`` (indices into ``x``, may lie outside it)."""
        n = x.shape[1]
        pad = r + 1 + max(0, -q0) + max(0, q0 + m - n)
        cs = np.zeros((x.shape[0], n + 2 * pad + 1))
        np.cumsum(x, axis=1, out=cs[:, pad + 1:pad + 1 + n])
        cs[:, pad + 1 + n:] = cs[:, pad + n:pad + n + 1]
        hi = pad + q0 + r + 1
        lo = pad + q0 - r
        out = cs[:, hi:hi + m] - cs[:, lo:lo + m]
        out *= 1.0 / (2 * r + 1)
        return out

    def _tss_pieces(self, chrom: str, lo: int, hi: int, W_acc, W_prom, bias):
        """Yield ``(a, b, tss+ [U, b-a], tss- [U, b-a])`` over ``[lo, hi)`` in pieces."""
        P = self.P
        for a in range(lo, hi, self.PIECE):
            b = min(hi, a + self.PIECE)
            seq = self._fetch(chrom, a - P - 2, b + P + 2)
            acc, pp, pm = self._acc_prom(seq, W_acc, W_prom, bias)
            sl = slice(P + 2, P + 2 + b - a)
            f = self._box_mean_at(acc, R_ENH, P + 2, b - a)
            f *= self.p.enh_boost
            f += 1.0
            f *= acc[:, sl]
            yield a, b, f * pp[:, sl], np.multiply(f, pm[:, sl], out=f)

    # ------------------------------------------------------------------ REF exon sums
    def ref_sums(self, chrom: str, gid: str, start: int, end: int, curies: tuple):
        """``(S+ [U], S- [U], n_exon_bases)``: REF ``sum_q TSS_s[q] K_s[q]`` of ``gid``'s
        exons clipped to ``[start, end)`` for each CURIE (cached)."""
        blocks = self.blocks(gid, start, end)
        full = self._blocks[gid]
        clip = None if np.array_equal(blocks, full) else (int(blocks[0, 0]), int(blocks[-1, 1])) if len(blocks) else (0, 0)
        key = (gid, clip, curies)
        with self._lock:
            hit = self._ref.get(key)
            if hit is not None:
                self._ref.move_to_end(key)
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one thread computes a gene; the others wait for its result
            with self._lock:
                hit = self._ref.get(key)
            if hit is not None:
                return hit
            out = self._compute_ref_sums(chrom, blocks, curies)
            with self._lock:
                self._ref[key] = out
                while len(self._ref) > self._cache_size:
                    self._ref.popitem(last=False)
                self._key_locks.pop(key, None)
            return out

    def _compute_ref_sums(self, chrom: str, blocks: np.ndarray, curies: tuple):
        """Uncached :meth:`ref_sums` for merged, clipped ``blocks``."""
        W_acc, W_prom, bias = self.bm.weights(list(curies))
        U = len(curies)
        sp = np.zeros(U)
        sm = np.zeros(U)
        n = int((blocks[:, 1] - blocks[:, 0]).sum()) if len(blocks) else 0
        # support of the kernels: [s - SPAN + 1, e + SPAN - 1) around every block, merged
        sup = _merge_blocks(np.stack([blocks[:, 0] - _SPAN + 1, blocks[:, 1] + _SPAN - 1], axis=1)) \
            if len(blocks) else np.zeros((0, 2), np.int64)
        for lo, hi in sup.tolist():
            for a, b, tp, tm in self._tss_pieces(chrom, lo, hi, W_acc, W_prom, bias):
                kp, km = exon_kernels(blocks, a, b)
                sp += np.einsum("un,n->u", tp, kp)  # not BLAS gemv (multi-threaded)
                sm += np.einsum("un,n->u", tm, km)
        return sp, sm, n

    # ------------------------------------------------------------------ ALT - REF (substitutions)
    def delta_sums(self, chrom: str, v0: int, ref: str, alt: str, blocks_list: list[np.ndarray], curies: tuple):
        """For an equal-length substitution at ``v0`` (0-based): ``(dS+ [G, U], dS- [G, U])``,
        the ALT - REF ``sum_q TSS_s[q] K_s[q]`` for each gene's (clipped, merged) blocks."""
        assert len(ref) == len(alt)
        P, Ra, lr = self.P, self.Ra, len(ref)
        W_acc, W_prom, bias = self.bm.weights(list(curies))
        G, U = len(blocks_list), len(curies)
        d_lo, d_hi = v0 - P - 4, v0 + lr + P + 4          # dTSS can be non-zero only here
        s_lo, s_hi = v0 - Ra - 2, v0 + lr + Ra + 2          # acc / prom can change only here
        # REF acc and prom over D (enh needs acc over D around the small window)
        seq = self._fetch(chrom, d_lo - Ra - 2, d_hi + Ra + 2)
        off = Ra + 2
        acc, pp, pm = self._acc_prom(seq, W_acc, W_prom, bias)
        acc, pp, pm = acc[:, off:off + d_hi - d_lo], pp[:, off:off + d_hi - d_lo], pm[:, off:off + d_hi - d_lo]
        # REF and ALT acc / prom on the small window, computed alike (exact zeros where equal)
        w_lo, w_hi = s_lo - Ra - 2, s_hi + Ra + 2
        sref = self._fetch(chrom, w_lo, w_hi)
        i = v0 - w_lo
        salt = sref[:i] + alt + sref[i + lr:]
        o = s_lo - w_lo
        a_r, p_r, m_r = (x[:, o:o + s_hi - s_lo] for x in self._acc_prom(sref, W_acc, W_prom, bias))
        a_a, p_a, m_a = (x[:, o:o + s_hi - s_lo] for x in self._acc_prom(salt, W_acc, W_prom, bias))
        d_acc = a_a - a_r
        ss = slice(s_lo - d_lo, s_hi - d_lo)
        # enh: REF on the small window, ALT - REF over D
        enh_small = self._box_mean_at(acc, R_ENH, ss.start, ss.stop - ss.start)
        d_enh = self._box_mean_at(d_acc, R_ENH, -(s_lo - d_lo), d_hi - d_lo)
        b = self.p.enh_boost
        acc_alt = acc.copy()
        acc_alt[:, ss] += d_acc
        out = []
        for prom, p_ref_s, p_alt_s in ((pp, p_r, p_a), (pm, m_r, m_a)):
            prom_alt = prom.copy()
            prom_alt[:, ss] += p_alt_s - p_ref_s
            d = acc_alt * prom_alt
            d *= d_enh
            d *= b
            d[:, ss] += (a_a * p_alt_s - a_r * p_ref_s) * (1.0 + b * enh_small)
            out.append(d)
        dsp = np.zeros((G, U))
        dsm = np.zeros((G, U))
        for gi, blocks in enumerate(blocks_list):
            kp, km = exon_kernels(blocks, d_lo, d_hi)
            dsp[gi] = np.einsum("un,n->u", out[0], kp)
            dsm[gi] = np.einsum("un,n->u", out[1], km)
        return dsp, dsm


    # ------------------------------------------------------------------ ALT - REF (indels)
    def _tss_local(self, local: str, base: int, lo: int, hi: int, W_acc, W_prom, bias):
        """TSS (+, -) ``[U, hi - lo]`` at positions ``lo..hi-1`` of a local sequence that
        starts at coordinate ``base`` and covers ``[lo - P - 2, hi + P + 2)``."""
        P = self.P
        seq = local[lo - P - 2 - base:hi + P + 2 - base]
        acc, pp, pm = self._acc_prom(seq, W_acc, W_prom, bias)
        sl = slice(P + 2, P + 2 + hi - lo)
        f = self._box_mean_at(acc, R_ENH, P + 2, hi - lo)
        f *= self.p.enh_boost
        f += 1.0
        f *= acc[:, sl]
        return f * pp[:, sl], np.multiply(f, pm[:, sl], out=f)

    @staticmethod
    def _clip_blocks(blocks: np.ndarray, lo: int, hi: int) -> np.ndarray:
        c = np.stack([np.maximum(blocks[:, 0], lo), np.minimum(blocks[:, 1], hi)], axis=1) if len(blocks) else blocks
        return c[c[:, 1] > c[:, 0]] if len(c) else c.reshape(0, 2)

    def delta_sums_indel(self, chrom: str, v0: int, ref: str, alt: str, blocks_list: list[np.ndarray],
                         curies: tuple):
        """ALT - REF exon sums for any variant (``delta_sums`` is the fast special case of
        substitutions): ``(dS+ [G, U], dS- [G, U], dDot [G, U], offset [G])``.

        ALT is aligned to REF coordinates as :func:`standins.scoring_math.align_alt_to_ref`
        does (inserted bases: their maximum at the anchor base; deleted bases: 0). A
        ``.``-strand context's delta is ``dS+ + dS- + dDot`` (``dDot`` corrects the
        insertion maximum, taken over the summed strands); ``offset`` (in transcription
        units) removes the 0.001 pseudo-signal of deleted exon bases, for every context."""
        P, lr, la = self.P, len(ref), len(alt)
        d, k = la - lr, min(lr, la)
        p0 = v0 + k - 1                                  # the anchor base
        W_acc, W_prom, bias = self.bm.weights(list(curies))
        G, U = len(blocks_list), len(curies)
        w_lo, w_hi = v0 - P - _SPAN - 2, v0 + lr + P + _SPAN + 2   # kernel support (REF coords)
        base = w_lo - P - 4
        ref_local = self._fetch(chrom, base, w_hi + P + 4)
        i = v0 - base
        alt_local = ref_local[:i] + alt + ref_local[i + lr:]
        tr = self._tss_local(ref_local, base, w_lo, w_hi, W_acc, W_prom, bias)
        ta = self._tss_local(alt_local, base, w_lo, w_hi + d, W_acc, W_prom, bias)
        # where aligned ALT transcription can differ from REF, per strand (+ boxes look left)
        zones = ((v0 - P, v0 + lr + P + _SPAN), (v0 - P - _SPAN, v0 + lr + P))
        dsp, dsm, ddot = np.zeros((G, U)), np.zeros((G, U)), np.zeros((G, U))
        offset = np.zeros(G)
        for gi, blocks in enumerate(blocks_list):
            maxes = []
            for si, (z_lo, z_hi) in enumerate(zones):
                e = self._clip_blocks(blocks, z_lo, z_hi)
                kr = exon_kernels(e, w_lo, w_hi)[si]
                # the same exon bases in ALT coordinates
                left = self._clip_blocks(e, -(1 << 62), p0 + (0 if la > lr else 1))
                right = self._clip_blocks(e, v0 + lr, 1 << 62) + d
                ka = exon_kernels(np.concatenate([left, right]), w_lo, w_hi + d)[si]
                delta = np.einsum("un,n->u", ta[si], ka) - np.einsum("un,n->u", tr[si], kr)
                anchor = la > lr and bool(np.any((e[:, 0] <= p0) & (e[:, 1] > p0)))
                if anchor:  # inserted bases: the maximum of ALT over p0 .. p0 + d
                    vals = np.stack([np.einsum("un,n->u", ta[si], exon_kernels(np.array([[j, j + 1]]), w_lo,
                                                                                  w_hi + d)[si])
                                     for j in range(p0, p0 + d + 1)])        # [d + 1, U]
                    delta += vals.max(axis=0)
                    maxes.append(vals)
                (dsp if si == 0 else dsm)[gi] = delta
            if len(maxes) == 2:
                ddot[gi] = (maxes[0] + maxes[1]).max(axis=0) - maxes[0].max(axis=0) - maxes[1].max(axis=0)
            if lr > la:  # deleted exon bases carry no signal at all in the aligned ALT
                gone = self._clip_blocks(blocks, v0 + k, v0 + lr)
                offset[gi] = -0.001 * float((gone[:, 1] - gone[:, 0]).sum()) if len(gone) else 0.0
        return dsp, dsm, ddot, offset


def lfc_from_sums(ref_s: np.ndarray, delta_s: np.ndarray, n: np.ndarray, gain: float) -> np.ndarray:
    """Gene-mask LFC ``ln(mean ALT + 0.001) - ln(mean REF + 0.001)`` from exon sums of the
    transcription signal: ``ref_s``/``delta_s`` ``[G, C]`` (REF, ALT - REF), ``n`` ``[G]``
    exon bases, ``gain`` the RNA output gain (track = gain * (txn + 0.001))."""
    n = np.asarray(n, dtype=np.float64)[:, None]
    mean_ref = gain * (ref_s / n + 0.001)
    mean_alt = mean_ref + gain * delta_s / n
    return np.log(mean_alt + 0.001) - np.log(mean_ref + 0.001)
