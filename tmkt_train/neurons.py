"""Multi-step leaky integrate-and-fire neurons with surrogate gradients.

Norse-style: the dynamics are pure functions of (input, state, parameters)
(:func:`lif_step`, :func:`lif_multistep`); :class:`LIF` is a thin module that
only stores the parameters. Convolutions, batch norm and pooling never see the
time axis: :func:`fold_time` runs them on ``T * B`` samples and unfolds the
result, so only neurons iterate over time (spikingjelly's ``SeqToANNContainer``).

Dynamics (spikingjelly's ``LIFNode`` conventions, method.md section 6):

- charge, ``decay_input=True``:  ``v <- v + (x - (v - v_reset)) / tau``
- charge, ``decay_input=False``: ``v <- v - (v - v_reset) / tau + x``
  (a soft-reset neuron, ``v_reset=None``, charges as if ``v_reset = 0``)
- fire: ``s = H(v - v_threshold)`` with ``H(0) = 1``; the backward pass uses the
  surrogate derivative instead of the Dirac delta
- reset: hard ``v <- v (1 - s) + v_reset s``; soft ``v <- v - v_threshold s``.
  ``detach_reset=True`` stops the gradient through ``s`` in the reset (the
  reference code of He et al. does this).

The state starts at ``v_reset`` (0 for soft reset). The time loop runs over the
static length ``T = x.shape[0]`` with no data-dependent Python branching, so
``torch.compile`` unrolls and fuses it.

Surrogates (``g'`` is what the backward pass uses in place of ``H'``):

- ``qgate`` (spikingjelly/braincog ``PiecewiseQuadratic``/``QGateGrad``, default
  alpha 2): ``g'(x) = alpha - alpha^2 |x|`` for ``|x| < 1/alpha``, else 0
- ``sigmoid`` (default alpha 4): ``g'(x) = alpha sig(alpha x) (1 - sig(alpha x))``
- ``atan`` (default alpha 2): ``g'(x) = (alpha / 2) / (1 + (pi/2 alpha x)^2)``
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_ALPHA",
    "LIF",
    "SURROGATES",
    "ATanSpike",
    "FoldTime",
    "QGateSpike",
    "SigmoidSpike",
    "fold_time",
    "heaviside",
    "lif_multistep",
    "lif_step",
    "spike_fn",
]


def heaviside(x: Tensor) -> Tensor:
    """``H(x) = [x >= 0]`` in the dtype of ``x`` (spikingjelly's convention, H(0) = 1)."""
    return (x >= 0).to(x.dtype)


class QGateSpike(torch.autograd.Function):
    """Heaviside forward, piecewise-quadratic ("quadratic gate") surrogate backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        # alpha - alpha^2 |x| is positive exactly where |x| < 1/alpha: clamping is the mask.
        sg = (a - a * a * x.abs()).clamp_min(0.0)
        return grad_output * sg, None


class SigmoidSpike(torch.autograd.Function):
    """Heaviside forward, derivative of ``sigmoid(alpha x)`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return grad_output * (ctx.alpha * s * (1.0 - s)), None


class ATanSpike(torch.autograd.Function):
    """Heaviside forward, derivative of ``arctan(pi/2 alpha x) / pi + 1/2`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        sg = (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x).square())
        return grad_output * sg, None


SURROGATES: dict[str, type[torch.autograd.Function]] = {
    "qgate": QGateSpike,
    "sigmoid": SigmoidSpike,
    "atan": ATanSpike,
}
DEFAULT_ALPHA: dict[str, float] = {"qgate": 2.0, "sigmoid": 4.0, "atan": 2.0}


def _resolve(surrogate: str, alpha: float | None) -> tuple[type[torch.autograd.Function], float]:
    try:
        fn = SURROGATES[surrogate]
    except KeyError:
        raise ValueError(
            f"unknown surrogate {surrogate!r}; expected one of {', '.join(sorted(SURROGATES))}"
        ) from None
    a = DEFAULT_ALPHA[surrogate] if alpha is None else float(alpha)
    if not a > 0:
        raise ValueError(f"surrogate alpha must be > 0, got {alpha!r}")
    return fn, a


def spike_fn(x: Tensor, surrogate: str = "qgate", alpha: float | None = None) -> Tensor:
    """``H(x)`` with the named surrogate gradient (alpha ``None`` -> that surrogate's default)."""
    fn, a = _resolve(surrogate, alpha)
    return fn.apply(x, a)


def _check_params(tau: float, v_threshold: float, v_reset: float | None) -> None:
    if not tau >= 1.0:
        # tau < 1 overshoots (v moves past x); spikingjelly requires tau > 1 too.
        raise ValueError(f"LIF tau must be >= 1, got {tau!r}")
    if v_reset is not None and not v_reset < v_threshold:
        raise ValueError(f"LIF v_reset ({v_reset}) must be below v_threshold ({v_threshold})")


def lif_step(
    x: Tensor,
    v: Tensor,
    tau: float = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    surrogate: str = "qgate",
    alpha: float | None = None,
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """One LIF step: returns ``(spike, v_after_reset)``. See the module docstring for the equations."""
    fn, a = _resolve(surrogate, alpha)
    return _step(x, v, fn, a, float(tau), float(v_threshold), v_reset, decay_input, detach_reset)


def _step(x, v, fn, alpha, tau, v_threshold, v_reset, decay_input, detach_reset):
    vr = 0.0 if v_reset is None else v_reset
    if decay_input:
        v = v + (x - (v - vr)) / tau
    else:
        v = v - (v - vr) / tau + x
    s = fn.apply(v - v_threshold, alpha)
    sr = s.detach() if detach_reset else s
    if v_reset is None:
        v = v - sr * v_threshold
    else:
        v = v * (1.0 - sr) + v_reset * sr
    return s, v


def lif_multistep(
    x: Tensor,
    tau: float = 2.0,
    v_threshold: float = 0.5,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    surrogate: str = "qgate",
    alpha: float | None = None,
    detach_reset: bool = False,
    v_init: Tensor | None = None,
    return_v: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run a LIF population over the leading time axis of ``x`` (shape ``(T, ...)``).

    Args:
        x: input current, ``(T, ...)``.
        tau: membrane time constant (>= 1).
        v_threshold: firing threshold.
        v_reset: hard-reset potential; ``None`` selects the soft reset (subtract the threshold).
        decay_input: charge ``v + (x - (v - v_reset)) / tau`` (True) or ``v - (v - v_reset) / tau + x``.
        surrogate: ``"qgate"``, ``"sigmoid"`` or ``"atan"``.
        alpha: surrogate sharpness; ``None`` -> 2 (qgate), 4 (sigmoid), 2 (atan).
        detach_reset: no gradient through the spike in the reset.
        v_init: initial membrane potential, shape ``x.shape[1:]``; default ``v_reset`` (0 for soft).
        return_v: also return the membrane potential after each step's reset, ``(T, ...)``
            (what spikingjelly's ``v_seq`` and the reference's ``node.mem`` hold).

    Returns:
        spikes ``(T, ...)`` in the dtype of ``x`` (and the membrane sequence when ``return_v``).
    """
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"lif_multistep needs a (T, ...) tensor with T >= 1, got shape {tuple(x.shape)}")
    _check_params(tau, v_threshold, v_reset)
    fn, a = _resolve(surrogate, alpha)
    if v_init is None:
        v = torch.full_like(x[0], 0.0 if v_reset is None else float(v_reset))
    else:
        v = v_init.to(x.dtype)
    spikes = []
    vs = []
    for t in range(x.shape[0]):
        s, v = _step(x[t], v, fn, a, float(tau), float(v_threshold), v_reset, decay_input, detach_reset)
        spikes.append(s)
        if return_v:
            vs.append(v)
    out = torch.stack(spikes)
    if return_v:
        return out, torch.stack(vs)
    return out


class LIF(nn.Module):
    """Multi-step LIF layer over a ``(T, ...)`` tensor; a thin wrapper of :func:`lif_multistep`.

    With ``record_v=True`` the membrane sequence of the last call (after reset,
    ``(T, ...)``) is kept in ``self.last_v`` (e.g. for CKA on membrane potentials).
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 0.5,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        surrogate: str = "qgate",
        alpha: float | None = None,
        detach_reset: bool = False,
        record_v: bool = False,
    ):
        super().__init__()
        _check_params(tau, v_threshold, v_reset)
        _, a = _resolve(surrogate, alpha)
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.decay_input = bool(decay_input)
        self.surrogate = surrogate
        self.alpha = a
        self.detach_reset = bool(detach_reset)
        self.record_v = bool(record_v)
        self.last_v: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        kw = dict(
            tau=self.tau,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            decay_input=self.decay_input,
            surrogate=self.surrogate,
            alpha=self.alpha,
            detach_reset=self.detach_reset,
        )
        if self.record_v:
            s, v = lif_multistep(x, return_v=True, **kw)
            self.last_v = v
            return s
        return lif_multistep(x, **kw)

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard to {self.v_reset}"
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, reset={reset}, "
            f"decay_input={self.decay_input}, surrogate={self.surrogate}(alpha={self.alpha}), "
            f"detach_reset={self.detach_reset}"
        )


class FoldTime(nn.Module):
    """Run ``module`` on ``(T, B, ...)`` by folding time into the batch: ``(T*B, ...)`` and back."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        t, b = x.shape[0], x.shape[1]
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, (t, b))


def fold_time(*modules: nn.Module) -> FoldTime:
    """Wrap one module (or several, in sequence) to run on ``(T, B, ...)`` with time folded into batch."""
    if not modules:
        raise ValueError("fold_time needs at least one module")
    return FoldTime(modules[0] if len(modules) == 1 else nn.Sequential(*modules))
