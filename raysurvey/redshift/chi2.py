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

So a whole redshift range costs a few FFT correlations per spectrum (``fft`` mode, wide
ranges: galaxies, QSOs), or one matrix product against precomputed shifted templates
(``matmul`` mode, narrow ranges: stellar radial velocities). Solving the small systems
(``n_vectors + npoly`` unknowns) is then done only at the shifts the search asks for
(``ShiftChi2.chi2``). All tensor code is torch, batched over spectra, float64 (chi^2
differences of a few units on totals of 1e6 need it), and runs unchanged on a GPU.
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


@functools.lru_cache(maxsize=64)
def _template_side(tset: TemplateSet, n_pix: int, mode: str, device: str):
    """Template signals (products T_k T_l, k <= l, and T_k), FFT'd or shifted, on device."""
    rest = tset.rest_slice(n_pix)  # (K, n_pix + S - 1), column j <-> k = j - s_max
    k = tset.n_vectors
    iu = np.triu_indices(k)
    products = rest[iu[0]] * rest[iu[1]]  # (Q, n_pix + S - 1)
    signals = np.concatenate([rest, products])  # (K + Q, n_rest)
    n_shift = tset.s_max - tset.s_min + 1
    if mode == "fft":
        length = next_fast_len(n_pix + n_shift - 1, real=True)
        spec = np.conj(np.fft.rfft(signals, n=length, axis=1))
        return torch.from_numpy(spec).to(device), length
    # matmul: shifted[i, g, m] = signal_g at rest column i - s + s_max, s = s_min + m
    m = np.arange(n_shift)
    cols = np.arange(n_pix)[:, None] + (tset.s_max - tset.s_min) - m[None, :]  # (N, S)
    shifted = signals[:, cols]  # (G, N, S)
    return torch.from_numpy(np.ascontiguousarray(shifted.transpose(1, 0, 2))).to(device), 0


class ShiftChi2:
    """chi^2 of one template set at the integer shifts ``s_min..s_max`` of a batch.

    Parameters
    ----------
    flux, ivar : torch.Tensor
        float64 (B, N) on the lattice; ivar 0 (and any flux) where bad.
    tset : TemplateSet
    npoly : int
        Number of Legendre terms added to the templates.
    """

    def __init__(self, flux: torch.Tensor, ivar: torch.Tensor, tset: TemplateSet, npoly: int = 3):
        b, n = flux.shape
        self.tset, self.npoly, self.n_pix = tset, npoly, n
        self.k = k = tset.n_vectors
        self.n_shift = tset.s_max - tset.s_min + 1
        dev = flux.device
        x, self.pp, self.pb, self.ff = spectrum_side(flux, ivar, npoly)  # x: (B, C, N)
        w = ivar
        mode = "matmul" if self.n_shift <= MATMUL_MAX_SHIFTS else "fft"
        side, length = _template_side(tset, n, mode, str(dev))
        if mode == "fft":
            xf = torch.fft.rfft(x, n=length, dim=-1)  # (B, C, F)
            idx = torch.from_numpy(
                (np.arange(tset.s_min, tset.s_max + 1) - tset.s_max) % length
            ).to(dev)
            # x channels against T_k: (B, C, K, S)
            cross = torch.fft.irfft(xf[:, :, None, :] * side[None, None, :k], n=length)
            cross = cross.index_select(-1, idx)
            # w against T_k T_l: (B, Q, S)
            quad = torch.fft.irfft(xf[:, :1] * side[None, k:], n=length).index_select(-1, idx)
        else:
            s = self.n_shift
            flat = side.reshape(n, -1)  # (N, G * S)
            cross = (x.reshape(-1, n) @ flat[:, : k * s]).reshape(b, -1, k, s)
            quad = (w @ flat[:, k * s :]).reshape(b, -1, s)
        self.cross, self.quad = cross, quad

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
    w against T_k T_l (k <= l); ``pp`` (B, P, P), ``pb`` (B, P), ``ff`` (B,).

    The systems are tiny (K + P <= 9) and many (B x M), so instead of one LAPACK call
    each, symmetric Gaussian elimination runs vectorised over all of them at once
    (batch last: every step is a few elementwise ops on contiguous arrays). A pivot
    that vanishes (a template that is zero over the good pixels at that shift) drops
    its vector from the fit instead of failing.
    """
    b, m = quad.shape[0], quad.shape[-1]
    dim = k + p
    mat = quad.new_zeros(dim, dim, b, m)
    iu = torch.triu_indices(k, k)
    quad_t = quad.permute(1, 0, 2)  # (Q, B, M)
    mat[iu[0], iu[1]] = quad_t
    mat[iu[1], iu[0]] = quad_t
    rhs = quad.new_zeros(dim, b, m)
    rhs[:k] = cross[:, -1].permute(1, 0, 2)
    if p:
        tp = cross[:, :p].permute(2, 1, 0, 3)  # (K, P, B, M): sum w P_p T_k
        mat[:k, k:] = tp
        mat[k:, :k] = tp.transpose(0, 1)
        mat[k:, k:] = pp.permute(1, 2, 0)[..., None]
        rhs[k:] = pb.T[..., None]
    diag = torch.diagonal(mat, dim1=0, dim2=1)  # (B, M, D)
    tiny = 1e-12 * diag.abs().amax(-1).clamp_min(1e-300)  # (B, M)
    quadform = torch.zeros_like(tiny)
    for j in range(dim):
        pivot = mat[j, j]
        usable = pivot > tiny
        inv = torch.where(usable, 1.0 / torch.where(usable, pivot, 1.0), 0.0)
        quadform += rhs[j] ** 2 * inv
        if j + 1 < dim:
            factor = mat[j + 1 :, j] * inv  # (D - j - 1, B, M)
            mat[j + 1 :, j + 1 :] -= factor[:, None] * mat[j, j + 1 :][None]
            rhs[j + 1 :] -= factor * rhs[j]
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


@functools.lru_cache(maxsize=64)
def _rest_tensor(tset: TemplateSet, n_pix: int, device: str) -> torch.Tensor:
    """Basis and its products T_k T_l (k <= l) over the rest slice: (K + Q, n_pix + S - 1)."""
    rest = tset.rest_slice(n_pix)
    iu = np.triu_indices(tset.n_vectors)
    return torch.from_numpy(np.concatenate([rest, rest[iu[0]] * rest[iu[1]]])).to(device)


def spectrum_side(flux: torch.Tensor, ivar: torch.Tensor, npoly: int):
    """Channels (w, w P_1.., w f) (B, C, N) and the shift-independent sums pp, pb, ff."""
    n = flux.shape[1]
    poly = torch.from_numpy(legendre(n, max(npoly, 1))).to(flux.device)  # (P, N)
    w = ivar
    wf = w * flux
    x = torch.stack([w] + [w * poly[p] for p in range(1, npoly)] + [wf], 1)
    pp = torch.einsum("bn,pn,qn->bpq", w, poly[:npoly], poly[:npoly])
    pb = wf @ poly[:npoly].T
    ff = (wf * flux).sum(-1)
    return x, pp, pb, ff


def chi2_window(
    flux: torch.Tensor,
    ivar: torch.Tensor,
    tset: TemplateSet,
    start: torch.Tensor,
    width: int,
    npoly: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """chi^2 at ``width`` consecutive shifts from a per-spectrum ``start`` (the fine step).

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
    b, n = flux.shape
    dev = flux.device
    width = min(width, tset.s_max - tset.s_min + 1)
    start = start.clamp(tset.s_min, tset.s_max - width + 1)
    signals = _rest_tensor(tset, n, str(dev))  # (G, n + S - 1)
    g = signals.shape[0]
    # template column of obs pixel i at shift s is i - s + s_max; one slab per spectrum
    x, pp, pb, ff = spectrum_side(flux, ivar, npoly)
    k = tset.n_vectors
    c0 = tset.s_max - start - (width - 1)  # (B,)
    if bool((start == start[0]).all()):  # one window for all: a shared slab, no gather
        slab = signals[:, int(c0[0]) : int(c0[0]) + n + width - 1]  # (G, L)
        corr = torch.stack(
            [x @ slab[:, width - 1 - m : width - 1 - m + n].T for m in range(width)], -1
        )  # (B, C, G, M)
        chi2 = solve(corr[:, :, :k], corr[:, 0, k:], pp, pb, ff, k, npoly)
        return chi2, start[:, None] + torch.arange(width, device=dev)
    cols = c0[:, None] + torch.arange(n + width - 1, device=dev)  # (B, L)
    slab = signals[:, cols.reshape(-1)].reshape(g, b, -1).transpose(0, 1)  # (B, G, L)
    out = []
    for m in range(width):
        off = width - 1 - m
        out.append(x @ slab[:, :, off : off + n].transpose(1, 2))  # (B, C, G)
    corr = torch.stack(out, -1)  # (B, C, G, M)
    chi2 = solve(corr[:, :, :k], corr[:, 0, k:], pp, pb, ff, k, npoly)
    return chi2, start[:, None] + torch.arange(width, device=dev)
