"""Batched linear least-squares chi^2 of template fits at every integer lattice shift.

At shift ``s`` (``log10(1 + z) = 1e-4 s``) the model of spectrum ``f`` with inverse
variance ``w`` is ``sum_k a_k T_k(i - s) + sum_p b_p P_p(i)``: the template set's basis
vectors, redshifted, plus Legendre polynomials in pixel index (calibration differences
between the templates and the survey). The best coefficients solve the normal
equations ``M(s) c = r(s)`` and ``chi^2(s) = sum w f^2 - r(s) . c(s)``.

Every entry of ``M(s)`` and ``r(s)`` is a correlation of a spectrum-side signal with a
template-side signal:

- ``sum_i w_i T_k T_l (i - s)``: ``w`` against the products ``T_k T_l``;
- ``sum_i (w P_p)_i T_k(i - s)`` and ``sum_i (w f)_i T_k(i - s)``: against ``T_k``;
- ``sum_i w_i P_p P_q`` and ``sum_i w f P_p`` do not depend on ``s``.

The spectrum side (``SpectrumSide``: the channels ``w, w P_1.., w f``, their FFTs, the
shift-independent sums) is computed once per batch and binning, and shared by every
template set and class fitted. A whole redshift range then costs a few FFT
correlations per spectrum (``fft`` mode, wide ranges: galaxies, QSOs), or one matrix
product against precomputed shifted templates (``matmul`` mode, narrow ranges: stellar
radial velocities); a few consecutive shifts around a candidate (``chi2_windows``, the
fine step) cost one matrix product per spectrum against shifted copies of its
channels. Solving the small systems (``n_vectors + npoly`` unknowns) is done only at
the shifts the search asks for (``solve``). All tensor code is torch, batched over
spectra, float64 (chi^2 differences of a few units on totals of 1e6 need it), and runs
unchanged on a GPU.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.fft import next_fast_len

from raysurvey.redshift.templates import TemplateSet

#: Shift ranges up to this many shifts use the matmul mode.
MATMUL_MAX_SHIFTS = 96


def legendre(n_pix: int, npoly: int) -> np.ndarray:
    """Legendre polynomials P_0..P_{npoly-1} over the pixel index mapped to [-1, 1]."""
    x = np.linspace(-1.0, 1.0, n_pix)
    return np.array([np.polynomial.legendre.Legendre.basis(p)(x) for p in range(npoly)])


@functools.lru_cache(maxsize=32)
def _legendre_tensor(n_pix: int, npoly: int, device: str) -> torch.Tensor:
    return torch.from_numpy(legendre(n_pix, max(npoly, 1))).to(device)  # (P, N)


def bin_spectra(flux: torch.Tensor, ivar: torch.Tensor, factor: int):
    """Inverse-variance weighted means of ``factor`` adjacent pixels (B, N // factor)."""
    if factor == 1:
        return flux, ivar
    b, n = flux.shape
    n = n - n % factor
    w = ivar[:, :n].reshape(b, -1, factor)
    wf = (w * flux[:, :n].reshape(b, -1, factor)).sum(-1)
    wsum = w.sum(-1)
    return torch.where(wsum > 0, wf / wsum.clamp_min(1e-300), 0.0), wsum


def spectrum_side(flux: torch.Tensor, ivar: torch.Tensor, npoly: int):
    """Channels (w, w P_1.., w f) (B, C, N) and the shift-independent sums pp, pb, ff."""
    n = flux.shape[1]
    poly = _legendre_tensor(n, npoly, str(flux.device))  # (P, N)
    w = ivar
    wf = w * flux
    x = torch.stack([w] + [w * poly[p] for p in range(1, npoly)] + [wf], 1)
    pp = torch.einsum("bn,pn,qn->bpq", w, poly[:npoly], poly[:npoly])
    pb = wf @ poly[:npoly].T
    ff = (wf * flux).sum(-1)
    return x, pp, pb, ff


class SpectrumSide:
    """The spectrum side of a batch: what every template set of equal binning shares.

    Parameters
    ----------
    flux, ivar : torch.Tensor
        float64 (B, N) on the lattice; ivar 0 (and any flux) where bad.
    npoly : int
        Number of Legendre terms added to the templates.

    Attributes
    ----------
    x : (B, C, N) channels ``w, w P_1.., w f`` (C = npoly + 1).
    pp, pb, ff : (B, P, P), (B, P), (B,): ``sum w P_p P_q``, ``sum w f P_p``, ``sum w f^2``.
    """

    def __init__(self, flux: torch.Tensor, ivar: torch.Tensor, npoly: int = 3):
        self.flux, self.ivar, self.npoly = flux, ivar, npoly
        self.x, self.pp, self.pb, self.ff = spectrum_side(flux, ivar, npoly)
        self._rfft: dict[int, torch.Tensor] = {}
        self._binned: dict[int, SpectrumSide] = {}

    @property
    def n_pix(self) -> int:
        return self.x.shape[-1]

    def rfft(self, length: int) -> torch.Tensor:
        """rfft of the channels zero-padded to ``length`` (B, C, length // 2 + 1), cached."""
        if length not in self._rfft:
            self._rfft[length] = torch.fft.rfft(self.x, n=length, dim=-1)
        return self._rfft[length]

    def binned(self, factor: int) -> SpectrumSide:
        """The batch binned ``factor`` pixels to one (``bin_spectra``), cached."""
        if factor == 1:
            return self
        if factor not in self._binned:
            self._binned[factor] = SpectrumSide(
                *bin_spectra(self.flux, self.ivar, factor), self.npoly
            )
        return self._binned[factor]

    def rows(self, rows: torch.Tensor) -> SpectrumSide:
        """The spectra ``rows`` (1-D index) only (caches are not carried over)."""
        if rows.numel() == self.x.shape[0] and bool(
            (rows == torch.arange(rows.numel(), device=rows.device)).all()
        ):
            return self
        out = SpectrumSide.__new__(SpectrumSide)
        out.flux, out.ivar, out.npoly = self.flux[rows], self.ivar[rows], self.npoly
        out.x, out.pp, out.pb, out.ff = self.x[rows], self.pp[rows], self.pb[rows], self.ff[rows]
        out._rfft, out._binned = {}, {}
        return out


def _signals(tset: TemplateSet, n_pix: int) -> np.ndarray:
    """Basis and its products T_k T_l (k <= l) over the rest slice: (K + Q, n_pix + S - 1)."""
    rest = tset.rest_slice(n_pix)  # column j <-> k = j - s_max
    iu = np.triu_indices(tset.n_vectors)
    return np.concatenate([rest, rest[iu[0]] * rest[iu[1]]])


@functools.lru_cache(maxsize=64)
def _template_fft(tset: TemplateSet, n_pix: int, device: str):
    """conj rfft of the template signals, rolled so that lag m is shift s_min + m."""
    signals = _signals(tset, n_pix)
    n_shift = tset.s_max - tset.s_min + 1
    length = next_fast_len(n_pix + n_shift - 1, real=True)
    padded = np.zeros((signals.shape[0], length))
    padded[:, : signals.shape[1]] = signals
    # correlation at lag m = sum_i x_i u[(i - m) mod L], u[j] = signal[j + S - 1]
    rolled = np.roll(padded, -(n_shift - 1), axis=1)
    return torch.from_numpy(np.conj(np.fft.rfft(rolled, axis=1))).to(device), length


@functools.lru_cache(maxsize=64)
def _template_shifted(tset: TemplateSet, n_pix: int, device: str) -> torch.Tensor:
    """shifted[i, g, m] = signal_g at rest column i - s + s_max, s = s_min + m: (N, G, S)."""
    signals = _signals(tset, n_pix)
    n_shift = tset.s_max - tset.s_min + 1
    m = np.arange(n_shift)
    cols = np.arange(n_pix)[:, None] + (tset.s_max - tset.s_min) - m[None, :]  # (N, S)
    shifted = signals[:, cols]  # (G, N, S)
    return torch.from_numpy(np.ascontiguousarray(shifted.transpose(1, 0, 2))).to(device)


@functools.lru_cache(maxsize=64)
def _rest_tensor(tset: TemplateSet, n_pix: int, device: str) -> torch.Tensor:
    """``_signals`` on ``device``: (K + Q, n_pix + S - 1)."""
    return torch.from_numpy(_signals(tset, n_pix)).to(device)


class ShiftChi2:
    """chi^2 of one template set at the integer shifts ``s_min..s_max`` of a batch.

    Parameters
    ----------
    flux, ivar : torch.Tensor
        float64 (B, N) on the lattice; ivar 0 (and any flux) where bad.
    tset : TemplateSet
    npoly : int
        Number of Legendre terms added to the templates.

    ``ShiftChi2.from_side(side, tset)`` starts from a shared ``SpectrumSide`` instead.
    """

    def __init__(self, flux: torch.Tensor, ivar: torch.Tensor, tset: TemplateSet, npoly: int = 3):
        self._setup(SpectrumSide(flux, ivar, npoly), tset)

    @classmethod
    def from_side(cls, side: SpectrumSide, tset: TemplateSet) -> ShiftChi2:
        out = cls.__new__(cls)
        out._setup(side, tset)
        return out

    def _setup(self, side: SpectrumSide, tset: TemplateSet) -> None:
        b, c, n = side.x.shape
        self.tset, self.npoly, self.n_pix = tset, side.npoly, n
        self.k = k = tset.n_vectors
        self.n_shift = s = tset.s_max - tset.s_min + 1
        self.pp, self.pb, self.ff = side.pp, side.pb, side.ff
        dev = str(side.x.device)
        if s > MATMUL_MAX_SHIFTS:
            spec, length = _template_fft(tset, n, dev)
            xf = side.rfft(length)  # (B, C, F)
            # x channels against T_k: (B, C, K, S); w against T_k T_l: (B, Q, S)
            cross = torch.fft.irfft(xf[:, :, None, :] * spec[None, None, :k], n=length)
            quad = torch.fft.irfft(xf[:, :1] * spec[None, k:], n=length)
            self.cross, self.quad = cross[..., :s], quad[..., :s]
        else:
            flat = _template_shifted(tset, n, dev).reshape(n, -1)  # (N, G * S)
            self.cross = (side.x.reshape(-1, n) @ flat[:, : k * s]).reshape(b, c, k, s)
            self.quad = (side.x[:, 0] @ flat[:, k * s :]).reshape(b, -1, s)

    def chi2(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """chi^2 at shift indices ``index`` (B, M), 0-based from ``s_min`` (None: all)."""
        k = self.k
        if index is None:
            return solve(self.cross, self.quad, self.pp, self.pb, self.ff, k, self.npoly)
        cross = torch.gather(
            self.cross, 3, index[:, None, None, :].expand(-1, self.cross.shape[1], k, -1)
        )
        quad = torch.gather(self.quad, 2, index[:, None, :].expand(-1, self.quad.shape[1], -1))
        return solve(cross, quad, self.pp, self.pb, self.ff, k, self.npoly)

    def chi2_all(self) -> torch.Tensor:
        """chi^2 at every shift (B, S)."""
        return self.chi2(None)


def solve(cross, quad, pp, pb, ff, k: int, p: int) -> torch.Tensor:
    """chi^2 = sum w f^2 - r^T M^-1 r from the correlations at M shifts.

    ``cross`` (B, C, K, M): channels (w, w P_1.., w f) against T_k; ``quad`` (B, Q, M):
    w against T_k T_l (k <= l); ``pp`` (B, P, P), ``pb`` (B, P), ``ff`` (B,). Any
    strides will do (views of the correlations are not copied).

    The systems are tiny (K + P <= 9) and many (B x M), so instead of one LAPACK call
    each, symmetric Gaussian elimination runs vectorised over all of them at once: the
    upper triangle of every system is a list of (B, M) tensors, and every step is a few
    elementwise ops on them (templates first, then polynomials). A pivot that vanishes
    (a template that is zero over the good pixels at that shift) drops its vector from
    the fit instead of failing.
    """
    dim = k + p
    # a[j][l], l >= j: (B, M) tensors, or (B, 1) for the shift-independent polynomial block
    a: list[list] = [[None] * dim for _ in range(dim)]
    q = 0
    for j in range(k):
        for c in range(j, k):
            a[j][c] = quad[:, q]
            q += 1
        for i in range(p):
            a[j][k + i] = cross[:, i, j]  # sum w P_i T_j (P_0 = 1)
    for i in range(p):
        for m in range(i, p):
            a[k + i][k + m] = pp[:, i, m, None]
    rhs = [cross[:, -1, j] for j in range(k)] + [pb[:, i, None] for i in range(p)]
    biggest = a[0][0].abs()
    for j in range(1, dim):
        biggest = torch.maximum(biggest, a[j][j].abs())
    tiny = 1e-12 * biggest.clamp_min(1e-300)  # (B, M)
    quadform = torch.zeros_like(tiny)
    for j in range(dim):
        pivot = a[j][j]
        usable = pivot > tiny
        inv = torch.where(usable, 1.0 / torch.where(usable, pivot, 1.0), 0.0)
        quadform = torch.addcmul(quadform, rhs[j] * rhs[j], inv)
        for r in range(j + 1, dim):
            factor = a[j][r] * inv
            for c in range(r, dim):
                a[r][c] = torch.addcmul(a[r][c], factor, a[j][c], value=-1.0)
            rhs[r] = torch.addcmul(rhs[r], factor, rhs[j], value=-1.0)
    return ff[:, None] - quadform


def chi2_direct(
    flux: np.ndarray, ivar: np.ndarray, tset: TemplateSet, shifts: np.ndarray, npoly: int = 3
) -> np.ndarray:
    """Reference chi^2 by explicit weighted least squares (numpy), for tests.

    ``flux``, ``ivar``: (N,); ``shifts``: integer shifts within the set's range.
    """
    n = flux.size
    rest = tset.rest_slice(n)
    poly = legendre(n, max(npoly, 1))[:npoly]
    sw = np.sqrt(ivar)
    out = []
    for s in shifts:
        cols = np.arange(n) - s + tset.s_max
        design = np.concatenate([rest[:, cols], poly]).T  # (N, K + P)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], flux * sw, rcond=None)
        out.append(np.sum(ivar * (flux - design @ coef) ** 2))
    return np.array(out)


def chi2_windows(
    side: SpectrumSide,
    sets: list[TemplateSet],
    owner: torch.Tensor,
    start: torch.Tensor,
    valid: torch.Tensor,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """chi^2 at ``width`` consecutive shifts from each candidate's ``start`` (the fine step).

    Parameters
    ----------
    side : SpectrumSide
        The batch at full resolution (B spectra).
    sets : list of TemplateSet
    owner, start, valid : torch.Tensor
        (B, C): template set index, first shift (moved inside the set's range) and
        whether to compute each of the C candidates of each spectrum.

    Returns
    -------
    (chi2 (B, C, width), shifts (B, C, width))
        chi^2 inf (and shift 0) where not computed; a set with fewer shifts than
        ``width`` fills only the first of them.

    For a spectrum the channels shifted by 0..width-1 pixels, ``(C * width, N + width -
    1)``, are copied once and shared by its candidates; each candidate is then two
    matrix products against a slice of its set's template signals (no gather).
    """
    b, n_cand = owner.shape
    x = side.x
    dev, dt = x.device, x.dtype
    n_ch, n = x.shape[1], x.shape[2]
    chi2 = torch.full((b, n_cand, width), float("inf"), dtype=dt, device=dev)
    shifts = torch.zeros((b, n_cand, width), dtype=torch.long, device=dev)
    widths = [min(width, t.s_max - t.s_min + 1) for t in sets]
    lo = torch.tensor([t.s_min for t in sets], device=dev)[owner]
    hi = torch.tensor([t.s_max - w + 1 for t, w in zip(sets, widths, strict=True)], device=dev)
    start = torch.minimum(torch.maximum(start, lo), hi[owner])
    pairs = [torch.nonzero(valid & (owner == i)) for i in range(len(sets))]  # (P_i, 2)
    if not any(len(p) for p in pairs):
        return chi2, shifts
    bufs = []
    for i, tset in enumerate(sets):
        k, g, w = tset.n_vectors, _rest_tensor(tset, n, str(dev)).shape[0], widths[i]
        cross = torch.empty((len(pairs[i]), k, n_ch, w), dtype=dt, device=dev)
        quad = torch.empty((len(pairs[i]), g - k, w), dtype=dt, device=dev)
        bufs.append((cross, quad))
    jobs = [[] for _ in range(b)]  # per spectrum: (set, slot, first template column)
    for i, (tset, p) in enumerate(zip(sets, pairs, strict=True)):
        c0 = tset.s_max - start[p[:, 0], p[:, 1]] - (widths[i] - 1)
        for slot, (r, col) in enumerate(zip(p[:, 0].tolist(), c0.tolist(), strict=True)):
            jobs[r].append((i, slot, col))
    padded = {}
    for r, todo in enumerate(jobs):
        shifted = {}
        for i, slot, col in todo:
            w = widths[i]
            if w not in shifted:  # (C * w, N + w - 1): row (c, m) is channel c moved by m
                if w not in padded:
                    padded[w] = torch.nn.functional.pad(x, (w - 1, w - 1))
                length = n + w - 1
                shifted[w] = padded[w][r].unfold(1, length, 1).reshape(n_ch * w, length)
            xs = shifted[w]
            signals = _rest_tensor(sets[i], n, str(dev))
            k = sets[i].n_vectors
            slab = signals[:, col : col + xs.shape[1]]  # (G, N + w - 1)
            cross, quad = bufs[i]
            torch.mm(slab[:k], xs.T, out=cross[slot].view(k, n_ch * w))
            torch.mm(slab[k:], xs[:w].T, out=quad[slot])
    for i, tset in enumerate(sets):
        p = pairs[i]
        if not len(p):
            continue
        cross, quad = bufs[i]
        rows = p[:, 0]
        fine = solve(
            cross.transpose(1, 2), quad, side.pp[rows], side.pb[rows], side.ff[rows],
            tset.n_vectors, side.npoly,
        )  # fmt: skip
        w = widths[i]
        chi2[p[:, 0], p[:, 1], :w] = fine
        shifts[p[:, 0], p[:, 1], :w] = start[p[:, 0], p[:, 1], None] + torch.arange(w, device=dev)
    return chi2, shifts


def chi2_window(
    flux: torch.Tensor,
    ivar: torch.Tensor,
    tset: TemplateSet,
    start: torch.Tensor,
    width: int,
    npoly: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """chi^2 at ``width`` consecutive shifts from a per-spectrum ``start`` (one set).

    Parameters
    ----------
    flux, ivar : torch.Tensor
        float64 (B, N).
    start : torch.Tensor
        int64 (B,), first shift of each window; moved inside ``[s_min, s_max - width + 1]``.

    Returns
    -------
    (chi2 (B, width), shifts (B, width))
    """
    width = min(width, tset.s_max - tset.s_min + 1)
    side = SpectrumSide(flux, ivar, npoly)
    owner = torch.zeros((flux.shape[0], 1), dtype=torch.long, device=flux.device)
    valid = torch.ones_like(owner, dtype=torch.bool)
    chi2, shifts = chi2_windows(side, [tset], owner, start[:, None], valid, width)
    return chi2[:, 0], shifts[:, 0]


@functools.lru_cache(maxsize=16)
def _at_zero(sets: tuple[TemplateSet, ...], n_pix: int, device: str):
    """Basis vectors (N, sum K) and products (N, sum Q) of ``sets`` at shift 0."""
    basis, products = [], []
    for t in sets:
        sig = _signals(t, n_pix)[:, t.s_max : t.s_max + n_pix]  # obs pixel i <-> column i + s_max
        basis.append(sig[: t.n_vectors])
        products.append(sig[t.n_vectors :])
    return (
        torch.from_numpy(np.ascontiguousarray(np.concatenate(basis).T)).to(device),
        torch.from_numpy(np.ascontiguousarray(np.concatenate(products).T)).to(device),
    )


def chi2_at_zero(side: SpectrumSide, sets: list[TemplateSet]) -> torch.Tensor:
    """chi^2 of every set at shift 0 (B, n_sets): two matrix products for all sets."""
    basis, products = _at_zero(tuple(sets), side.n_pix, str(side.x.device))
    cross = side.x @ basis  # (B, C, sum K)
    quad = side.x[:, 0] @ products  # (B, sum Q)
    out, kk, qq = [], 0, 0
    for t in sets:
        k = t.n_vectors
        q = k * (k + 1) // 2
        c = cross[:, :, kk : kk + k, None]
        out.append(solve(c, quad[:, qq : qq + q, None], side.pp, side.pb, side.ff, k, side.npoly))
        kk, qq = kk + k, qq + q
    return torch.cat(out, 1)
