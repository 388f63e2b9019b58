"""Numba kernels of the simulator: rendering ``L`` along the path and the pixel model's threshold
crossings (``docs/formats.md`` §6.2-6.4, model version ``SIM_VERSION``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: ``last`` emission time of a pixel that has not emitted yet (no refractory period applies).
_NEVER = -(1 << 62)


@numba.njit(nogil=True, cache=True)
def _render_log(img, pad, ox, oy, dx, dy, eps, out):  # pragma: no cover - compiled
    """``out[y, x] = log(I + eps)``: I is ``img`` (the rendered image surrounded by
    ``pad`` pixels of background) displaced by (dx, dy) and sampled over each
    sensor pixel's area (bilinear weights, exact at 1:1 scale)."""
    h, w = out.shape
    fu0 = -ox - dx
    i0 = int(math.floor(fu0))
    wx = fu0 - i0
    i0 += pad
    fv0 = -oy - dy
    j0 = int(math.floor(fv0))
    wy = fv0 - j0
    j0 += pad
    # the fractional parts are the same for every pixel: one displacement per frame
    w00 = (1.0 - wy) * (1.0 - wx)
    w01 = (1.0 - wy) * wx
    w10 = wy * (1.0 - wx)
    w11 = wy * wx
    for y in range(h):
        r0 = img[j0 + y]
        r1 = img[j0 + y + 1]
        for x in range(w):
            c = i0 + x
            val = w00 * r0[c] + w01 * r0[c + 1] + w10 * r1[c] + w11 * r1[c + 1]
            out[y, x] = math.log(val + eps)


@numba.njit(nogil=True, cache=True)
def _crossings(
    l0, l1, t0, t1, ref, c_on, c_off, last, refr, leak, xs_of, ys_of, buf, n, k_start
):  # pragma: no cover
    """Process one linear step (t0, l0) -> (t1, l1) of pixels ``k_start..`` (flat arrays).

    ``leak`` is the downward drift of ``L_ref`` per us in units of ``C_on``; it is
    applied as ``L' = L + leak * C_on * t``. Events go to ``buf`` (int64 (cap, 4):
    t, x, y, p) from row ``n``. A pixel's state (``ref``, ``last``) is written only
    once all its events fit, so when ``buf`` is full the function returns
    ``(n, k)`` with pixel ``k`` untouched: the caller grows ``buf`` and calls again
    from ``k``. Returns ``(n, len(l0))`` when done.
    """
    cap = buf.shape[0]
    dt = t1 - t0
    npx = l0.shape[0]
    for k in range(k_start, npx):
        a = l0[k]
        b = l1[k]
        if leak != 0.0:
            a += leak * c_on[k] * t0
            b += leak * c_on[k] * t1
        r = ref[k]
        lst = last[k]
        con = c_on[k]
        coff = c_off[k]
        m = n
        # ON: L rises through r + con, r + 2 con, ...; OFF: L falls through r - coff, ...
        # (sign * (b - r) and r + sign * step are exact, so both directions share one loop)
        pol = -1
        if b - r >= con:
            pol, sign, step = 1, 1.0, con
        elif r - b >= coff:
            pol, sign, step = 0, -1.0, coff
        if pol >= 0:
            while sign * (b - r) >= step:
                r += sign * step
                frac = (r - a) / (b - a)
                if frac < 0.0:
                    frac = 0.0
                elif frac > 1.0:
                    frac = 1.0
                ti = np.int64(math.floor(t0 + dt * frac + 0.5))
                if refr == 0 or ti - lst >= refr:
                    if m >= cap:
                        return n, k
                    buf[m, 0] = ti
                    buf[m, 1] = xs_of[k]
                    buf[m, 2] = ys_of[k]
                    buf[m, 3] = pol
                    m += 1
                    lst = ti
        ref[k] = r
        last[k] = lst
        n = m
    return n, npx


@numba.njit(nogil=True, cache=True)
def _grow(buf, n):  # pragma: no cover - compiled
    nb = np.empty((buf.shape[0] * 2, 4), dtype=np.int64)
    nb[:n] = buf[:n]
    return nb


@numba.njit(nogil=True, cache=True)
def _simulate_kernel(
    img, pad, ox, oy, eps, w, h, times, dxs, dys, c_on, c_off, refr, leak, max_dl, max_sub, cap
):  # pragma: no cover - compiled
    """Whole recording: render ``L`` along the path (with adaptive sub-steps), emit crossings.

    Returns (events int64 (n, 4): t, x, y, p in emission order, number of rendered
    samples).
    """
    npx = w * h
    prev = np.empty((h, w))
    nxt = np.empty((h, w))
    sub = np.empty((h, w))
    _render_log(img, pad, ox, oy, dxs[0], dys[0], eps, prev)
    ref = prev.ravel().copy()
    last = np.full(npx, _NEVER, dtype=np.int64)
    xs_of = np.empty(npx, dtype=np.int64)
    ys_of = np.empty(npx, dtype=np.int64)
    for k in range(npx):
        xs_of[k] = k % w
        ys_of[k] = k // w
    cf_on = c_on.ravel()
    cf_off = c_off.ravel()
    buf = np.empty((max(cap, 16), 4), dtype=np.int64)
    n = 0
    rendered = 1
    pf = prev.ravel()
    for i in range(times.shape[0] - 1):
        _render_log(img, pad, ox, oy, dxs[i + 1], dys[i + 1], eps, nxt)
        rendered += 1
        nf = nxt.ravel()
        mx = 0.0
        for k in range(npx):
            d = abs(nf[k] - pf[k])
            if d > mx:
                mx = d
        nsub = 1
        if mx > max_dl:
            nsub = min(int(math.ceil(mx / max_dl)), max_sub)
        ta = times[i]
        for j in range(1, nsub + 1):
            if j < nsub:
                f = j / nsub
                sx = dxs[i] + f * (dxs[i + 1] - dxs[i])
                sy = dys[i] + f * (dys[i + 1] - dys[i])
                _render_log(img, pad, ox, oy, sx, sy, eps, sub)
                rendered += 1
                tb = times[i] + f * (times[i + 1] - times[i])
                tgt = sub.ravel()
            else:
                tb = times[i + 1]
                tgt = nf
            k = 0
            while k < npx:
                n, k = _crossings(
                    pf, tgt, ta, tb, ref, cf_on, cf_off, last, refr, leak, xs_of, ys_of, buf, n, k
                )
                if k < npx:
                    buf = _grow(buf, n)
            pf[:] = tgt
            ta = tb
    return buf[:n].copy(), rendered
