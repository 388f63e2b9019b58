"""Multi-step leaky integrate-and-fire neurons with surrogate gradients.

Norse-style: the dynamics are pure functions of (input, state, parameters)
(:func:`lif_step`, :func:`lif_multistep`); :class:`LIF` is a thin module that
only stores the parameters. Convolutions, batch norm and pooling never see the
time axis: :func:`fold_time` runs them on ``T * B`` samples and unfolds the
result, so only neurons iterate over time (spikingjelly's ``SeqToANNContainer``).

Dynamics (spikingjelly's ``LIFNode`` conventions, docs/method.md section 6):

- charge, ``decay_input=True``:  ``v <- v + (x - (v - v_reset)) / tau``
- charge, ``decay_input=False``: ``v <- v - (v - v_reset) / tau + x``
  (a soft-reset neuron, ``v_reset=None``, charges as if ``v_reset = 0``)
- fire: ``s = H(v - v_threshold)`` with ``H(0) = 1``; the backward pass uses the
  surrogate derivative instead of the Dirac delta
- reset: hard ``v <- v (1 - s) + v_reset s``; soft ``v <- v - v_threshold s``.
  ``detach_reset=True`` stops the gradient through ``s`` in the reset (the
  reference code of He et al. does this).

The state starts at ``v_reset`` (0 for soft reset). Two implementations of
:func:`lif_multistep`, with the same forward values:

- eager: one autograd node (``_LIFMultiStep``) whose forward loop writes into
  preallocated buffers and whose backward is BPTT written out by hand; it saves
  only the charged potential and the spikes and runs about half the elementwise
  passes of per-step autograd (timed in docs/benchmarks.md, "Training step");
- under ``torch.compile``: the plain per-step loop (:func:`_step`) over the
  static length ``T = x.shape[0]`` with no data-dependent Python branching, which
  the compiler unrolls and fuses, forward and backward.

Surrogates (``g'`` is what the backward pass uses in place of ``H'``):

- ``qgate`` (spikingjelly/braincog ``PiecewiseQuadratic``/``QGateGrad``, default
  alpha 2): ``g'(x) = alpha - alpha^2 |x|`` for ``|x| < 1/alpha``, else 0
- ``sigmoid`` (default alpha 4): ``g'(x) = alpha sig(alpha x) (1 - sig(alpha x))``
- ``atan`` (default alpha 2): ``g'(x) = (alpha / 2) / (1 + (pi/2 alpha x)^2)``
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


def _qgate_grad(x: Tensor, a: float) -> Tensor:
    # alpha - alpha^2 |x| is positive exactly where |x| < 1/alpha: clamping is the mask.
    return (a - a * a * x.abs()).clamp_min(0.0)


def _sigmoid_grad(x: Tensor, a: float) -> Tensor:
    s = torch.sigmoid(a * x)
    return a * s * (1.0 - s)


def _atan_grad(x: Tensor, a: float) -> Tensor:
    return (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x).square())


def _spike_function(name: str, grad: Callable[[Tensor, float], Tensor], doc: str) -> type:
    """An autograd Function: Heaviside forward, ``grad_output * grad(x, alpha)`` backward."""

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor, alpha: float) -> Tensor:
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return heaviside(x)

        @staticmethod
        def backward(ctx, grad_output: Tensor):
            (x,) = ctx.saved_tensors
            return grad_output * grad(x, ctx.alpha), None

    Spike.__name__ = Spike.__qualname__ = name
    Spike.__doc__ = doc
    return Spike


QGateSpike = _spike_function(
    "QGateSpike", _qgate_grad, 'Heaviside forward, piecewise-quadratic ("quadratic gate") surrogate backward.'
)
SigmoidSpike = _spike_function(
    "SigmoidSpike", _sigmoid_grad, "Heaviside forward, derivative of ``sigmoid(alpha x)`` backward."
)
ATanSpike = _spike_function(
    "ATanSpike", _atan_grad, "Heaviside forward, derivative of ``arctan(pi/2 alpha x) / pi + 1/2`` backward."
)


SURROGATES: dict[str, type[torch.autograd.Function]] = {
    "qgate": QGateSpike,
    "sigmoid": SigmoidSpike,
    "atan": ATanSpike,
}
DEFAULT_ALPHA: dict[str, float] = {"qgate": 2.0, "sigmoid": 4.0, "atan": 2.0}
# surrogate Function -> its derivative g'(x, alpha) (what the fused BPTT backward evaluates)
_SURROGATE_GRADS = {QGateSpike: _qgate_grad, SigmoidSpike: _sigmoid_grad, ATanSpike: _atan_grad}


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
    if v.shape == x.shape[1:] and not torch.compiler.is_compiling():
        # eager: one fused autograd node with a hand-written BPTT backward (same forward values)
        p = (float(tau), float(v_threshold), None if v_reset is None else float(v_reset), bool(decay_input))
        if torch.is_grad_enabled() and (x.requires_grad or v.requires_grad):
            s, vs = _LIFMultiStep.apply(x, v, p, _SURROGATE_GRADS[fn], a, bool(detach_reset), return_v)
        else:
            s, vs, _ = _lif_forward(x, v, *p, return_v=return_v, keep_h=False)
        return (s, vs) if return_v else s
    # torch.compile traces the plain per-step loop and fuses it (forward and backward)
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


def _lif_forward(
    x: Tensor,
    v: Tensor,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    *,
    return_v: bool,
    keep_h: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The LIF loop without autograd, into preallocated buffers: ``(spikes, v_seq, h_seq)``.

    Values are bitwise those of the per-step loop of :func:`_step` (up to the sign
    of a zero membrane, which never changes a spike):

    - ``(x - v) / tau`` is computed as ``(x - v) * (1 / tau)`` only when ``1 / tau`` is
      exact (tau a power of two), where both round the same real number;
    - ``H(h - th)`` is ``h >= th`` (a difference of two distinct floats is never 0);
    - for binary ``s`` the hard reset ``h (1 - s) + v_reset s`` is ``h - h s (+ v_reset s)``
      and the soft reset ``h - th s`` is ``h + (-th) s``, each exact.

    ``h_seq`` is the charged potential before reset (what the backward pass needs),
    ``v_seq`` the potential after reset.
    """
    T = x.shape[0]
    vr = 0.0 if v_reset is None else v_reset
    exact_inv = math.frexp(tau)[0] == 0.5  # tau = 2^k: x / tau == x * (1 / tau) exactly
    with torch.no_grad():
        spikes = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        h_seq = torch.empty_like(spikes) if keep_h else None
        v_seq = torch.empty_like(spikes) if return_v else None
        buf = torch.empty_like(v)
        h_tmp = torch.empty_like(v) if h_seq is None else None
        v_tmp = [torch.empty_like(v), torch.empty_like(v)] if v_seq is None else None
        for t in range(T):
            h = h_seq[t] if h_seq is not None else h_tmp
            rel = v if vr == 0.0 else torch.sub(v, vr, out=buf)  # v - v_reset
            if decay_input:  # v + (x - (v - v_reset)) / tau
                d = torch.sub(x[t], rel, out=buf)
                if exact_inv:
                    torch.add(v, d, alpha=1.0 / tau, out=h)
                else:
                    torch.add(v, d.div_(tau), out=h)
            else:  # v - (v - v_reset) / tau + x
                d = torch.sub(v, torch.div(rel, tau, out=buf), out=buf)
                torch.add(d, x[t], out=h)
            s = torch.ge(h, v_threshold, out=spikes[t])  # H(h - th), H(0) = 1
            v = v_seq[t] if v_seq is not None else v_tmp[t % 2]
            if v_reset is None:
                torch.add(h, s, alpha=-v_threshold, out=v)
            else:
                torch.addcmul(h, h, s, value=-1.0, out=v)
                if v_reset != 0.0:
                    v.add_(s, alpha=v_reset)
    return spikes, v_seq, h_seq


class _LIFMultiStep(torch.autograd.Function):
    """Multi-step LIF as one autograd node: the forward loop of :func:`_lif_forward`, BPTT by hand.

    Per step, with ``z = h_t - v_threshold`` and ``g = g'(z)`` the surrogate derivative:
    ``dL/dh_t = dL/ds_t g + dL/dv_t dv_t/dh_t`` where ``dv_t/dh_t`` is ``1 - s_t`` (hard
    reset) or 1 (soft), plus ``(v_reset - h_t) g`` or ``-v_threshold g`` without
    ``detach_reset``; ``dL/dx_t = dL/dh_t / tau`` (``decay_input``) or ``dL/dh_t``;
    ``dL/dv_{t-1} = dL/dh_t - dL/dh_t / tau`` (plus the gradient of ``v_seq[t-1]``).
    Saves ``h`` (one ``(T, ...)`` tensor) and the spikes (the output) instead of the
    per-step autograd graph, and runs about half the elementwise passes of autograd.
    """

    @staticmethod
    def forward(ctx, x, v0, params, sg_fn, alpha, detach_reset, return_v):
        tau, v_threshold, v_reset, decay_input = params
        spikes, v_seq, h_seq = _lif_forward(
            x, v0, tau, v_threshold, v_reset, decay_input, return_v=return_v, keep_h=True
        )
        ctx.save_for_backward(h_seq, spikes)
        ctx.params, ctx.sg_fn, ctx.alpha = params, sg_fn, alpha
        ctx.detach_reset, ctx.return_v = detach_reset, return_v
        return spikes, v_seq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_spikes, g_v):
        h_seq, spikes = ctx.saved_tensors
        tau, v_threshold, v_reset, decay_input = ctx.params
        a, sg_fn, detach = ctx.alpha, ctx.sg_fn, ctx.detach_reset
        g_v = g_v if ctx.return_v else None
        g_x = torch.empty_like(h_seq)
        z, sg, tmp = (torch.empty_like(h_seq[0]) for _ in range(3))
        a_t = torch.full((), a, dtype=z.dtype, device=z.device)
        carry = torch.empty_like(z)  # dL/dv_t from the later steps (and, at the end, dL/dv_init)
        T = h_seq.shape[0]
        for t in range(T - 1, -1, -1):
            h, s = h_seq[t], spikes[t]
            torch.sub(h, v_threshold, out=z)
            if sg_fn is _qgate_grad:  # alpha - alpha^2 |z|, clamped at 0
                torch.add(a_t, torch.abs(z, out=sg), alpha=-a * a, out=sg).clamp_(min=0.0)
            else:
                sg.copy_(sg_fn(z, a))
            # dL/dv_t (after reset): from the later steps and from v_seq; none at the last step
            if t == T - 1:
                gv = None if g_v is None else carry.copy_(g_v[t])
            else:
                gv = carry if g_v is None else carry.add_(g_v[t])
            if gv is None:
                gh = torch.mul(sg, g_spikes[t], out=sg)
            else:
                if v_reset is None:
                    if not detach:  # dv/dh = 1 - v_threshold g
                        gv.sub_(torch.mul(gv, sg, out=tmp).mul_(v_threshold))
                else:
                    extra = None if detach else gv * (v_reset - h) * sg  # through the spike in the reset
                    gv.addcmul_(gv, s, value=-1.0)  # dv/dh = 1 - s
                    if extra is not None:
                        gv.add_(extra)
                gh = torch.addcmul(gv, sg, g_spikes[t], out=sg)  # dL/ds_t g + dL/dv_t dv_t/dh_t
            if decay_input:
                torch.div(gh, tau, out=g_x[t])
                torch.sub(gh, g_x[t], out=carry)
            else:
                g_x[t].copy_(gh)
                torch.sub(gh, torch.div(gh, tau, out=tmp), out=carry)
        return g_x, carry, None, None, None, None, None


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
