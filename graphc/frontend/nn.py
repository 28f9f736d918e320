"""Neural-network helpers built from existing primitive ops: convolution, pooling, padding,
cropping, upsampling, normalisation.

Nothing here adds an IR op. A convolution is im2col by stacking strided slices of the padded
input (one slice per kernel offset) followed by one matmul with the ``(prod(k) * cin, cout)``
kernel; max pooling is a max over the same stacked slices; average pooling divides a sum of
slices by a constant count map. Shape inference, the NumPy reference, the gradient (by the
autodiff of slice/concatenate/matmul/max) and the native lowering therefore all come from the
primitives.

Layout: ``x`` is channels-last, ``(batch, *spatial, channels)`` with 1 or 2 (or more) spatial
axes; kernels are Keras's ``(*kernel_size, cin // groups, cout)``.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from graphc.errors import InputError, ShapeError
from graphc.frontend import ops
from graphc.frontend.variables import constant
from graphc.ir.node import Node


def _tuple(v: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) != n:
        raise InputError(f"{what} must be an int or a tuple of {n} ints, got {v}")
    return v


def conv_output_length(size: int, k: int, stride: int, padding: str, dilation: int = 1) -> int:
    """The output length along one axis (Keras/TensorFlow conventions)."""
    ek = (k - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        return (size - ek) // stride + 1
    raise InputError(f"padding must be 'valid' or 'same', got {padding!r}")


def same_padding(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """``(before, after)`` zero padding of TensorFlow's "same" (the extra one goes after)."""
    ek = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + ek - size, 0)
    return total // 2, total - total // 2


def _spatial(x: Node, nsp: int, what: str) -> tuple[int, ...]:
    if x.ndim != nsp + 2:
        raise ShapeError(f"{what}: expects a rank-{nsp + 2} input (batch, {nsp} spatial axes, channels), "
                         f"got shape {tuple(x.shape)}")
    sp = tuple(x.shape[1:1 + nsp])
    if not all(isinstance(d, int) for d in sp):
        raise ShapeError(f"{what}: spatial sizes must be static, got shape {tuple(x.shape)}")
    return sp


def _pad_input(x: Node, sp: Sequence[int], ks: Sequence[int], strides: Sequence[int], dil: Sequence[int],
               padding: str, value: float, what: str) -> tuple[Node, list[int]]:
    """``x`` padded as ``padding`` asks, and the output sizes."""
    outs, widths = [], [(0, 0)]
    for size, k, s, d in zip(sp, ks, strides, dil):
        ek = (k - 1) * d + 1
        if padding == "valid" and ek > size:
            raise ShapeError(f"{what}: the {'dilated ' if d > 1 else ''}kernel size {tuple(ks)} is larger than the "
                             f"input's spatial size {tuple(sp)} with padding='valid' (input shape "
                             f"{(None,) + tuple(sp) + (x.shape[-1],)}); use padding='same' or a smaller kernel")
        outs.append(conv_output_length(size, k, s, padding, d))
        widths.append(same_padding(size, k, s, d) if padding == "same" else (0, 0))
    widths.append((0, 0))
    return ops.pad(x, widths, constant_values=value), outs


def _windows(xp: Node, ks: Sequence[int], strides: Sequence[int], dil: Sequence[int]) -> Node:
    """The windows of ``xp`` as ``(batch, *outs, K, channels)``, K = prod(ks) kernel offsets in
    row-major order: one PATCHES node (im2col in one kernel; its gradient, col2im, in one)."""
    cols = ops.patches(xp, ks, strides, dil)
    return ops.reshape(cols, tuple(cols.shape[:-1]) + (int(np.prod(ks)), xp.shape[-1]))


def conv(x: Node, kernel: Node, strides: int | Sequence[int] = 1, padding: str = "valid",
         dilation_rate: int | Sequence[int] = 1, groups: int = 1, what: str = "conv") -> Node:
    """N-d convolution (cross-correlation, as Keras) of channels-last ``x`` with a Keras-layout
    kernel ``(*k, cin // groups, cout)``; no bias."""
    nsp = kernel.ndim - 2
    sp = _spatial(x, nsp, what)
    ks = tuple(kernel.shape[:nsp])
    strides = _tuple(strides, nsp, "strides")
    dil = _tuple(dilation_rate, nsp, "dilation_rate")
    cin, cout = x.shape[-1], kernel.shape[-1]
    if not isinstance(cin, int) or cin != kernel.shape[-2] * groups:
        raise ShapeError(f"{what}: the input has {cin} channels (shape {(None,) + tuple(x.shape[1:])}) but the "
                         f"kernel of shape {tuple(kernel.shape)} with groups={groups} expects "
                         f"{kernel.shape[-2] * groups}")
    if cout % groups:
        raise ShapeError(f"{what}: {cout} filters are not divisible by groups={groups}")
    xp, outs = _pad_input(x, sp, ks, strides, dil, padding, 0.0, what)
    kk = int(np.prod(ks))
    batch = x.shape[0]
    cg, og = cin // groups, cout // groups
    windows = _windows(xp, ks, strides, dil)  # (B, *outs, kk, cin)
    results = []
    for g in range(groups):
        part = windows if groups == 1 else windows[..., g * cg:(g + 1) * cg]
        flat = ops.reshape(part, (-1, kk * cg))
        kg = kernel if groups == 1 else kernel[..., g * og:(g + 1) * og]
        y = ops.matmul(flat, ops.reshape(kg, (kk * cg, og)))
        results.append(y)
    y = results[0] if groups == 1 else ops.concatenate(results, axis=-1)
    return ops.reshape(y, (batch,) + tuple(outs) + (cout,))


def depthwise_conv(x: Node, kernel: Node, strides: int | Sequence[int] = 1, padding: str = "valid",
                   dilation_rate: int | Sequence[int] = 1, what: str = "depthwise_conv") -> Node:
    """Depthwise convolution of channels-last ``x`` with a Keras depthwise kernel
    ``(*k, cin, depth_multiplier)``: output channel ``c * depth_multiplier + m``; no bias.
    A sum over kernel offsets of slice * kernel row (no matmul)."""
    nsp = kernel.ndim - 2
    sp = _spatial(x, nsp, what)
    ks = tuple(kernel.shape[:nsp])
    strides = _tuple(strides, nsp, "strides")
    dil = _tuple(dilation_rate, nsp, "dilation_rate")
    cin, dm = x.shape[-1], kernel.shape[-1]
    if cin != kernel.shape[-2]:
        raise ShapeError(f"{what}: the input has {cin} channels (shape {(None,) + tuple(x.shape[1:])}) but the "
                         f"depthwise kernel of shape {tuple(kernel.shape)} expects {kernel.shape[-2]}")
    xp, outs = _pad_input(x, sp, ks, strides, dil, padding, 0.0, what)
    windows = _windows(xp, ks, strides, dil)  # (B, *outs, K, cin)
    kflat = ops.reshape(kernel, (int(np.prod(ks)), cin, dm))
    total = ops.sum(ops.multiply(ops.expand_dims(windows, -1), kflat), axis=-3)  # (B, *outs, cin, dm)
    return ops.reshape(total, (x.shape[0],) + tuple(outs) + (cin * dm,))


def deconv_output_length(size: int, k: int, stride: int, padding: str, output_padding: int | None = None,
                         dilation: int = 1) -> int:
    """Keras's output length of a transposed convolution along one axis."""
    ek = (k - 1) * dilation + 1
    if output_padding is None:
        return size * stride + max(ek - stride, 0) if padding == "valid" else size * stride
    pad = ek // 2 if padding == "same" else 0
    return (size - 1) * stride + ek - 2 * pad + output_padding


def conv_transpose(x: Node, kernel: Node, strides: int | Sequence[int] = 1, padding: str = "valid",
                   output_padding: Sequence[int | None] | None = None, dilation_rate: int | Sequence[int] = 1,
                   what: str = "conv_transpose") -> Node:
    """Transposed convolution (the gradient of :func:`conv` with respect to its input) of
    channels-last ``x`` with a Keras kernel ``(*k, filters, cin)``; no bias. The input is
    dilated by ``strides`` (interior padding), padded by the dilated kernel size - 1, and
    convolved with the spatially flipped kernel; the result is cropped/extended to Keras's size."""
    from graphc.ir.node import make_node
    from graphc.ir.ops import Op
    nsp = kernel.ndim - 2
    sp = _spatial(x, nsp, what)
    ks = tuple(kernel.shape[:nsp])
    strides = _tuple(strides, nsp, "strides")
    dil = _tuple(dilation_rate, nsp, "dilation_rate")
    ops_ = list(output_padding) if output_padding is not None else [None] * nsp
    if x.shape[-1] != kernel.shape[-1]:
        raise ShapeError(f"{what}: the input has {x.shape[-1]} channels (shape {(None,) + tuple(x.shape[1:])}) but "
                         f"the kernel of shape {tuple(kernel.shape)} expects {kernel.shape[-1]}")
    lo, hi, interior = [0], [0], [0]
    crops = []
    for size, k, s, d, op in zip(sp, ks, strides, dil, ops_):
        ek = (k - 1) * d + 1
        full = (size - 1) * s + ek
        want = deconv_output_length(size, k, s, padding, op, d)
        if op is None:
            before = max(ek - s, 0) // 2 if padding == "same" else 0
        else:
            before = ek // 2 if padding == "same" else 0
        lo.append(ek - 1)
        hi.append(ek - 1)
        interior.append(s - 1)
        crops.append((before, want, full))
    lo.append(0)
    hi.append(0)
    interior.append(0)
    xd = make_node(Op.PAD, (x,), {"lo": tuple(lo), "hi": tuple(hi), "interior": tuple(interior), "value": 0.0})
    flip = tuple([slice(None, None, -1)] * nsp + [slice(None), slice(None)])
    kf = ops.transpose(ops.getitem(kernel, flip), tuple(range(nsp)) + (nsp + 1, nsp))
    y = conv(xd, kf, 1, "valid", dil, 1, what=what)  # (B, *full, filters)
    widths = [(0, 0)]
    idx = [slice(None)]
    for before, want, full in crops:
        avail = full - before
        widths.append((0, max(want - avail, 0)))
        idx.append(slice(before, before + min(want, avail)))
    y = ops.getitem(y, tuple(idx) + (slice(None),))
    return ops.pad(y, widths + [(0, 0)])


def _pool_windows(x: Node, pool_size, strides, padding: str, pad_value: float, what: str):
    """The pooling windows of ``x`` as (batch, *outs, K, channels), padded with ``pad_value``;
    and the spatial sizes, pool sizes, strides and output sizes."""
    nsp = x.ndim - 2
    sp = _spatial(x, nsp, what)
    ks = _tuple(pool_size, nsp, "pool_size")
    st = ks if strides is None else _tuple(strides, nsp, "strides")
    xp, outs = _pad_input(x, sp, ks, st, (1,) * nsp, padding, pad_value, what)
    return _windows(xp, ks, st, (1,) * nsp), sp, ks, st, outs


def _tiles(x: Node, pool_size, strides, padding: str, what: str) -> tuple[Node, tuple[int, ...]] | None:
    """Pooling windows that tile the input (valid padding, strides equal to the pool size, as
    Keras's default 2x2 pooling): ``x`` (cropped to whole windows) as a view of shape
    ``(batch, out_1, k_1, out_2, k_2, ..., channels)`` and the axes to reduce; None otherwise.
    Reducing that view reads ``x`` in place: no window copies (im2col) forward and no col2im
    backward (the pool's gradient is then elementwise on the same view)."""
    nsp = x.ndim - 2
    sp = _spatial(x, nsp, what)
    ks = _tuple(pool_size, nsp, "pool_size")
    st = ks if strides is None else _tuple(strides, nsp, "strides")
    if padding != "valid" or tuple(st) != tuple(ks) or not all(isinstance(d, int) for d in sp):
        return None
    outs = [d // k for d, k in zip(sp, ks)]
    if any(o == 0 for o in outs):
        return None  # too small: the general path reports it
    if any(o * k != d for o, k, d in zip(outs, ks, sp)):  # the rows and columns no window covers
        x = ops.getitem(x, (slice(None),) + tuple(slice(0, o * k) for o, k in zip(outs, ks)) + (slice(None),))
    shape = (x.shape[0],) + tuple(d for o, k in zip(outs, ks) for d in (o, k)) + (x.shape[-1],)
    return ops.reshape(x, shape), tuple(2 + 2 * i for i in range(nsp))


def max_pool(x: Node, pool_size: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str = "valid", what: str = "max_pool") -> Node:
    """Max pooling over the spatial axes of channels-last ``x`` (padding never wins)."""
    tiled = _tiles(x, pool_size, strides, padding, what)
    if tiled is not None:
        return ops.max(tiled[0], axis=tiled[1])
    lowest = float(np.finfo(np.dtype(x.dtype)).min) if "float" in x.dtype else -2.0 ** 31
    windows, *_ = _pool_windows(x, pool_size, strides, padding, lowest, what)
    return ops.max(windows, axis=-2)


def avg_pool(x: Node, pool_size: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str = "valid", what: str = "avg_pool") -> Node:
    """Average pooling; with "same" padding the padded positions are not counted (as Keras)."""
    tiled = _tiles(x, pool_size, strides, padding, what)
    if tiled is not None:
        return ops.divide(ops.sum(tiled[0], axis=tiled[1]), float(np.prod(_tuple(pool_size, x.ndim - 2, "pool_size"))))
    windows, sp, ks, st, outs = _pool_windows(x, pool_size, strides, padding, 0.0, what)
    total = ops.sum(windows, axis=-2)
    if padding == "valid":
        return ops.divide(total, float(np.prod(ks)))
    # count of real (unpadded) positions in each window, computed once in NumPy
    ones = np.ones((1,) + tuple(sp) + (1,), np.float64)
    widths = [(0, 0)] + [same_padding(s, k, t) for s, k, t in zip(sp, ks, st)] + [(0, 0)]
    onesp = np.pad(ones, widths)
    cnt = np.zeros((1,) + tuple(outs) + (1,), np.float64)
    for offs in itertools.product(*[range(k) for k in ks]):
        idx = (slice(None),) + tuple(slice(o, o + (n - 1) * s + 1, s) for o, s, n in zip(offs, st, outs)) + (slice(None),)
        cnt += onesp[idx]
    return ops.divide(total, constant(cnt.astype(x.dtype)))


def upsample_nearest(x: Node, size: Sequence[int]) -> Node:
    """Repeat each spatial position ``size[i]`` times along spatial axis ``i`` (channels-last)."""
    nsp = x.ndim - 2
    size = _tuple(size, nsp, "size")
    b, sp, c = x.shape[0], x.shape[1:1 + nsp], x.shape[-1]
    inter = [b]
    for d in sp:
        inter += [d, 1]
    y = ops.reshape(x, tuple(inter) + (c,))
    full = [b]
    for d, s in zip(sp, size):
        full += [d, s]
    y = ops.broadcast_to(y, tuple(full) + (c,))
    return ops.reshape(y, (b,) + tuple(d * s for d, s in zip(sp, size)) + (c,))


def moments(x: Node, axes: Sequence[int], keepdims: bool = False) -> tuple[Node, Node]:
    """Mean and (biased) variance over ``axes``."""
    mean = ops.mean(x, axis=tuple(axes), keepdims=True)
    var = ops.mean(ops.square(ops.subtract(x, mean)), axis=tuple(axes), keepdims=True)
    if not keepdims:
        keep = [d for i, d in enumerate(x.shape) if i not in [a % x.ndim for a in axes]]
        mean, var = ops.reshape(mean, tuple(keep)), ops.reshape(var, tuple(keep))
    return mean, var


def to_channels_last(x: Node) -> Node:
    return ops.transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,))


def to_channels_first(x: Node) -> Node:
    return ops.transpose(x, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))


__all__ = ["conv", "depthwise_conv", "conv_transpose", "deconv_output_length", "max_pool", "avg_pool", "upsample_nearest", "moments", "conv_output_length", "same_padding",
           "to_channels_last", "to_channels_first"]
