"""Time-step Mixup (docs/method.md section 3) and He et al.'s sliding replacement.

Time-step Mixup replaces the tail of an RGB-encoded sequence by its DVS partner:
draw ``u_t ~ U(0, 1)`` for t = 1..T, let ``t* = min{t : u_t < p}`` (T + 1 if none),
and take the DVS frame for ``t >= t*`` (RGB first, events after, at most one
switch). The number of event frames ``K = T - t* + 1`` is truncated-geometric and

    r_m(p) = E[K] / T = 1 - q (1 - q^T) / (p T) = 1 - (1/T) sum_{k=1..T} q^k,   q = 1 - p

(the second form follows from E[#RGB frames] = sum_k P(t* > k) = sum_k q^k; it is
the same closed form without the division by p, exact at p -> 0).
:func:`replacement_probability` inverts it by bisection. The *normalized*
variant conditions on ``t* <= T`` (at least one event frame):
``r_m(p) = (1 - (1/T) sum q^k) / (1 - q^T)``, which runs from (T + 1) / (2T)
(p -> 0: t* uniform on 1..T) to 1.

Everything that touches tensors runs on the tensors' device with fixed shapes
(no data-dependent Python control flow), so it can sit inside a compiled step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "RmSchedule",
    "event_ratio",
    "expected_event_ratio",
    "replacement_probability",
    "sliding_probability",
    "sliding_replace",
    "time_step_mixup",
]


def _check_T(T: int) -> int:
    if isinstance(T, bool) or int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    return int(T)


def expected_event_ratio(p: float, T: int, normalized: bool = False) -> float:
    """E[K] / T under Time-step Mixup with per-step replacement probability ``p``.

    ``normalized=True`` conditions on at least one event frame (t* renormalised over 1..T).
    """
    T = _check_T(T)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    q = 1.0 - p
    powers = [q**k for k in range(T + 1)]  # q^0 .. q^T
    if not normalized:
        return 1.0 - sum(powers[1:]) / T
    # (1 - mean_k q^k) / (1 - q^T) with the common factor (1 - q) cancelled:
    # 1 - q^k = (1 - q) sum_{j<k} q^j, so the ratio is exact at q = 1 too.
    partial = 0.0
    num = 0.0
    for k in range(1, T + 1):
        partial += powers[k - 1]  # sum_{j<k} q^j
        num += partial
    return num / (T * partial)


@functools.lru_cache(maxsize=4096)
def _solve(r_m: float, T: int, normalized: bool, tol: float) -> float:
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if expected_event_ratio(mid, T, normalized) < r_m:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def replacement_probability(r_m: float, T: int, normalized: bool = False, tol: float = 1e-10) -> float:
    """Per-step replacement probability p whose expected event-frame ratio is ``r_m``.

    Args:
        r_m: target E[K] / T in [0, 1] ((T + 1) / (2T) .. 1 when ``normalized``).
        T: time steps.
        normalized: condition on at least one event frame (the alternative reading).
        tol: bisection tolerance on p.

    Raises:
        ValueError: r_m outside the reachable range, or T not a positive integer.
    """
    T = _check_T(T)
    r_m = float(r_m)
    if not math.isfinite(r_m) or not 0.0 <= r_m <= 1.0:
        raise ValueError(f"mixup ratio r_m must be in [0, 1], got {r_m!r}")
    if normalized:
        floor = (T + 1) / (2 * T)
        if r_m < floor - 1e-12:
            raise ValueError(
                f"mixup ratio r_m={r_m} is unreachable with normalized replacement at T={T}: "
                f"at least one event frame means r_m >= (T + 1) / (2T) = {floor:.4f}"
            )
        if r_m <= floor:
            return 0.0
    elif r_m == 0.0:
        return 0.0
    if r_m == 1.0:
        return 1.0
    return _solve(r_m, T, bool(normalized), float(tol))


def event_ratio(mask: Tensor) -> Tensor:
    """Realised ratio rho = K / T of a ``(B, T)`` event mask, shape ``(B,)``."""
    return mask.float().mean(dim=1)


def _mask_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def _check_pair(x_rgb: Tensor, x_dvs: Tensor) -> None:
    if x_rgb.shape != x_dvs.shape:
        raise ValueError(f"RGB and DVS batches differ in shape: {tuple(x_rgb.shape)} vs {tuple(x_dvs.shape)}")
    if x_rgb.dim() < 2:
        raise ValueError(f"expected (B, T, ...) batches, got shape {tuple(x_rgb.shape)}")


def _as_column(p: float | Tensor, B: int, device: torch.device) -> Tensor:
    p = torch.as_tensor(p, dtype=torch.float32, device=device)
    if p.dim() == 0:
        p = p.expand(B)
    if p.shape != (B,):
        raise ValueError(f"p must be a scalar or have shape ({B},), got {tuple(p.shape)}")
    return p.reshape(B, 1)


def time_step_mixup(
    x_rgb: Tensor,
    x_dvs: Tensor,
    p: float | Tensor,
    generator: torch.Generator | None = None,
    normalized: bool = False,
) -> tuple[Tensor, Tensor]:
    """Mix a ``(B, T, ...)`` RGB batch and its DVS partners step-wise, RGB first, events after.

    Args:
        x_rgb: RGB-encoded sequences, ``(B, T, C, H, W)`` (any trailing shape).
        x_dvs: the DVS partners, same shape.
        p: per-step replacement probability (:func:`replacement_probability`), a float or ``(B,)``.
        generator: a ``torch.Generator`` on the batches' device, for reproducible draws.
        normalized: draw t* from the law conditioned on t* <= T (at least one event frame).

    Returns:
        ``(x_mix, mask)``: ``x_mix[b, t] = x_dvs[b, t]`` where ``mask[b, t] = 1``, else
        ``x_rgb[b, t]``; ``mask`` is ``(B, T)`` float, non-decreasing in t (``m_t = [t >= t*]``).
    """
    _check_pair(x_rgb, x_dvs)
    B, T = x_rgb.shape[0], x_rgb.shape[1]
    dev = x_rgb.device
    pc = _as_column(p, B, dev)
    if not normalized:
        u = torch.rand(B, T, device=dev, generator=generator)
        fired = u < pc
        # m_t = [some u_s < p for s <= t] = [t >= t*]; fixed-shape prefix OR.
        mask = fired.cumsum(dim=1) > 0
    else:
        # Inverse CDF of t* - 1 ~ geometric(p) truncated to 0..T-1; uniform when p = 0.
        u = torch.rand(B, 1, device=dev, generator=generator)
        q = 1.0 - pc
        tail = -torch.expm1(T * torch.log1p(-pc.clamp(max=1.0 - 1e-7)))  # 1 - q^T
        k_geo = torch.floor(torch.log1p(-u * tail) / torch.log(q.clamp(min=1e-30)))
        k_uni = torch.floor(u * T)
        k = torch.where(pc <= 0, k_uni, torch.where(pc >= 1, torch.zeros_like(k_uni), k_geo))
        k = k.clamp(0, T - 1)
        steps = torch.arange(T, device=dev, dtype=k.dtype).unsqueeze(0)
        mask = steps >= k
    shape = (B, T) + (1,) * (x_rgb.dim() - 2)
    x_mix = torch.where(mask.reshape(shape), x_dvs, x_rgb)
    return x_mix, mask.to(_mask_dtype(x_rgb))


def sliding_probability(progress: float, power: float = 3.0) -> float:
    """He et al.'s replacement probability ``clip(progress, 0, 1) ** power``."""
    return min(max(float(progress), 0.0), 1.0) ** power


def sliding_replace(
    x_rgb: Tensor,
    x_dvs: Tensor,
    progress: float,
    generator: torch.Generator | None = None,
    power: float = 3.0,
) -> tuple[Tensor, Tensor]:
    """He et al.'s sliding training: each RGB sequence is replaced *whole* by its DVS partner.

    The probability is ``progress ** power`` (power 3 in the reference), ``progress`` =
    iteration / total iterations, clipped to [0, 1].

    Returns:
        ``(x, mask)`` with ``mask`` ``(B, T)`` float: all ones for replaced samples, zeros otherwise.
    """
    _check_pair(x_rgb, x_dvs)
    B, T = x_rgb.shape[0], x_rgb.shape[1]
    prob = sliding_probability(progress, power)
    u = torch.rand(B, device=x_rgb.device, generator=generator)
    replaced = u < prob
    shape = (B,) + (1,) * (x_rgb.dim() - 1)
    x = torch.where(replaced.reshape(shape), x_dvs, x_rgb)
    mask = replaced.unsqueeze(1).expand(B, T).to(_mask_dtype(x_rgb))
    return x, mask


@dataclass(frozen=True)
class RmSchedule:
    """Mixup ratio over training: ``r(progress)`` for progress in [0, 1] (clipped).

    - ``constant``: ``r_start`` throughout (the default reading; ``r_end`` is ignored);
    - ``linear``: ``r_start + (r_end - r_start) * progress``;
    - ``cubic``: ``r_start + (r_end - r_start) * progress ** 3`` (the shape of He et al.'s ramp).
    """

    kind: str = "constant"
    r_start: float = 0.5
    r_end: float | None = None

    KINDS = ("constant", "linear", "cubic")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"r_m schedule must be one of {', '.join(self.KINDS)}, got {self.kind!r}")
        for name, v in (("r_start", self.r_start), ("r_end", self.r_end)):
            if v is not None and not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"schedule {name} must be in [0, 1], got {v!r}")
        if self.kind != "constant" and self.r_end is None:
            raise ValueError(f"a {self.kind} r_m schedule needs r_end")

    def __call__(self, progress: float) -> float:
        s = min(max(float(progress), 0.0), 1.0)
        if self.kind == "constant":
            return float(self.r_start)
        f = s if self.kind == "linear" else s**3
        return float(self.r_start + (self.r_end - self.r_start) * f)
