"""Winograd's F(2x2, 3x3): a 3x3 correlation at stride 1, computed by 2x2 output tiles.

Each 4x4 input tile ``d`` and the kernel ``g`` are transformed, ``V = B^T d B`` and
``U = G g G^T``. Summing the 16 elementwise products over the input channels is then 16
GEMMs, ``(tiles x in) (in x out)``, and each output tile is ``A^T M A``. That is 16
multiplies per tile and channel pair where the direct form takes 36.

conv2d's input gradient of a 3x3 stride-1 conv is such a correlation: dZ with the kernel
flipped and its channels swapped (``conv.py``). For the cnn workload's second conv, a
block of three images took 0.161 ms this way, single-threaded. Its ``dZ K^T`` GEMM alone
took 0.229 ms, before col2im.
"""

import numpy as np

from ..blas import gemm
from ..jit import kernel

# conv.py's helpers: no node family of their own, so nothing for the backend to export
__all__: list[str] = []

# G: the kernel transform of F(2x2, 3x3) (B^T and A^T are written out in the kernel below)
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def kernel_transform(k: np.ndarray) -> np.ndarray:
    """``U (16, in, out)``: ``G k G^T`` of a ``(3, 3, in, out)`` correlation kernel, one
    ``(in, out)`` matrix per position of the 4x4 tile (row-major)."""
    # two matrix products over the tap axes, each (in, out) pair a column (an einsum of
    # the three took 0.17 ms at 32 x 64 channels, these 0.01)
    g, (C, D) = _G.astype(k.dtype), k.shape[2:]
    t = (g @ k.reshape(3, -1)).reshape(4, 3, C * D)  # t[a, j] = sum_i G[a, i] k[i, j]
    return np.matmul(g, t).reshape(16, C, D)  # u[a, b] = sum_j G[b, j] t[a, j]


def tiles(h: int, w: int) -> tuple[int, int]:
    """2x2 output tiles down and across an ``h x w`` output (a last row or column may be
    half a tile)."""
    return (h + 1) // 2, (w + 1) // 2


@kernel
def _input_tiles(x, pad, v, s, e, qt, ql, TH, TW):
    # v[:, t, :] = B^T d B for the 4x4 tiles d of images s:e padded by qt rows above and ql
    # columns left (zeros past the image too), TH x TW tiles an image, row-major; returns
    # the tile count. pad (>= e - s, 2 TH + 2, 2 TW + 2, C) holds the padded images.
    B, H, W, C = x.shape
    zero = x.dtype.type(0)
    t = 0
    for n in range(s, e):
        p = pad[n - s]
        for i in range(p.shape[0]):
            for j in range(p.shape[1]):
                pr = p[i, j]
                hi, wj = i - qt, j - ql
                if 0 <= hi < H and 0 <= wj < W:
                    xr = x[n, hi, wj]
                    for c in range(C):
                        pr[c] = xr[c]
                else:
                    for c in range(C):
                        pr[c] = zero
        for ty in range(TH):
            r0, r1, r2, r3 = p[2 * ty], p[2 * ty + 1], p[2 * ty + 2], p[2 * ty + 3]
            for tx in range(TW):
                d0, d1, d2, d3 = r0[2 * tx:], r1[2 * tx:], r2[2 * tx:], r3[2 * tx:]
                for c in range(C):
                    # B^T d, row by row: (d0 - d2, d1 + d2, d2 - d1, d1 - d3), at each of
                    # the tile's four columns
                    a0, a1 = d0[0, c] - d2[0, c], d0[1, c] - d2[1, c]
                    a2, a3 = d0[2, c] - d2[2, c], d0[3, c] - d2[3, c]
                    b0, b1 = d1[0, c] + d2[0, c], d1[1, c] + d2[1, c]
                    b2, b3 = d1[2, c] + d2[2, c], d1[3, c] + d2[3, c]
                    c0, c1 = d2[0, c] - d1[0, c], d2[1, c] - d1[1, c]
                    c2, c3 = d2[2, c] - d1[2, c], d2[3, c] - d1[3, c]
                    e0, e1 = d1[0, c] - d3[0, c], d1[1, c] - d3[1, c]
                    e2, e3 = d1[2, c] - d3[2, c], d1[3, c] - d3[3, c]
                    # (B^T d) B: the same combination of the columns
                    v[0, t, c], v[1, t, c] = a0 - a2, a1 + a2
                    v[2, t, c], v[3, t, c] = a2 - a1, a1 - a3
                    v[4, t, c], v[5, t, c] = b0 - b2, b1 + b2
                    v[6, t, c], v[7, t, c] = b2 - b1, b1 - b3
                    v[8, t, c], v[9, t, c] = c0 - c2, c1 + c2
                    v[10, t, c], v[11, t, c] = c2 - c1, c1 - c3
                    v[12, t, c], v[13, t, c] = e0 - e2, e1 + e2
                    v[14, t, c], v[15, t, c] = e2 - e1, e1 - e3
                t += 1
    return t


@kernel
def correlate3x3(x, u, pad, v, m, y, s, e, qt, ql):
    # y[n, h, w, :] = sum over i, j < 3 of xp[n, h + i, w + j, :] . k[i, j] for n in s:e,
    # where xp is x with qt rows above and ql columns left of zeros (and zeros past its
    # end), and u = kernel_transform(k). pad (>= e - s, 2 TH + 2, 2 TW + 2, C) holds the
    # zero-padded images, v (16, tiles, C) and m (16, tiles, D) the transformed tiles and
    # their products. Channels are innermost everywhere, so every loop over c vectorizes.
    OH, OW = y.shape[1], y.shape[2]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    t = _input_tiles(x, pad, v, s, e, qt, ql, TH, TW)
    for q in range(16):  # M_q = V_q U_q: the products summed over input channels
        gemm(v[q, :t], u[q], m[q, :t])
    t = 0
    for n in range(s, e):
        for ty in range(TH):
            h = 2 * ty
            down = h + 1 < OH  # the tile's second row is in the output
            for tx in range(TW):
                w = 2 * tx
                right = w + 1 < OW
                y0 = y[n, h, w:]
                y1 = y[n, h + 1, w:] if down else y0
                for c in range(y0.shape[1]):
                    # A^T M, row by row: (m0 + m1 + m2, m1 - m2 - m3) at each column
                    s0 = m[0, t, c] + m[4, t, c] + m[8, t, c]
                    s1 = m[1, t, c] + m[5, t, c] + m[9, t, c]
                    s2 = m[2, t, c] + m[6, t, c] + m[10, t, c]
                    s3 = m[3, t, c] + m[7, t, c] + m[11, t, c]
                    u0 = m[4, t, c] - m[8, t, c] - m[12, t, c]
                    u1 = m[5, t, c] - m[9, t, c] - m[13, t, c]
                    u2 = m[6, t, c] - m[10, t, c] - m[14, t, c]
                    u3 = m[7, t, c] - m[11, t, c] - m[15, t, c]
                    # (A^T M) A: the same combination of the columns; a half tile's
                    # outside cells are not written
                    if down:
                        y1[0, c] = u0 + u1 + u2
                        if right:
                            y1[1, c] = u1 - u2 - u3
                    if right:
                        y0[1, c] = s1 - s2 - s3
                    y0[0, c] = s0 + s1 + s2
                t += 1


@kernel
def kernel_grad3x3(x, g, pad, v, m, tmp, acc, s, e, qt, ql):
    # acc[q] += sum over the tiles t of images s:e of V_q[t]^T W_q[t]: the transform of
    # dk[i, j] = sum over n, oh, ow of xp[n, oh + i, ow + j, :]^T g[n, oh, ow, :], xp as
    # in correlate3x3 (k_grad_from reads dk = G^T acc G). By the transposition principle
    # the weight gradient is F(3x3, 2x2) from F(2x2, 3x3)'s matrices: V = B^T d B of the
    # 4x4 x tiles, W = A g A^T of the 2x2 g tiles (m holds W). tmp (16, C, D) is scratch.
    OH, OW = g.shape[1], g.shape[2]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    _input_tiles(x, pad, v, s, e, qt, ql, TH, TW)  # (the same tiles as g's, counted below)
    zero = g.dtype.type(0)
    t = 0
    for n in range(s, e):
        for ty in range(TH):
            h = 2 * ty
            down = h + 1 < OH
            for tx in range(TW):
                w = 2 * tx
                right = w + 1 < OW
                g0 = g[n, h, w:]
                g1 = g[n, h + 1, w:] if down else g0
                for c in range(g0.shape[1]):
                    p00 = g0[0, c]
                    p01 = g0[1, c] if right else zero
                    p10 = g1[0, c] if down else zero
                    p11 = g1[1, c] if down and right else zero
                    # A g, row by row: (g0, g0 + g1, g0 - g1, -g1); then each row (a, b)
                    # times A^T: (a, a + b, a - b, -b)
                    a1, b1 = p00 + p10, p01 + p11
                    a2, b2 = p00 - p10, p01 - p11
                    m[0, t, c], m[1, t, c] = p00, p00 + p01
                    m[2, t, c], m[3, t, c] = p00 - p01, -p01
                    m[4, t, c], m[5, t, c] = a1, a1 + b1
                    m[6, t, c], m[7, t, c] = a1 - b1, -b1
                    m[8, t, c], m[9, t, c] = a2, a2 + b2
                    m[10, t, c], m[11, t, c] = a2 - b2, -b2
                    m[12, t, c], m[13, t, c] = -p10, -p10 - p11
                    m[14, t, c], m[15, t, c] = p11 - p10, p11
                t += 1
    for q in range(16):
        gemm(v[q, :t].T, m[q, :t], tmp[q])
        a, b = acc[q], tmp[q]
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                a[i, j] += b[i, j]


def k_grad_from(acc: np.ndarray) -> np.ndarray:
    """``dk (3, 3, C, D) = G^T S G`` from ``acc (16, C, D)``, kernel_grad3x3's sums."""
    g, (C, D) = _G.astype(acc.dtype), acc.shape[1:]
    t = (g.T @ acc.reshape(4, -1)).reshape(3, 4, C * D)  # t[i, b] = sum_a G[a, i] S[a, b]
    return np.matmul(g.T, t).reshape(3, 3, C, D)  # dk[i, j] = sum_b G[b, j] t[i, b]
