"""Theano's MRG31k3p random streams, as Lasagne's ``DropoutLayer`` draws its masks.

Lasagne 0.1 gives each ``DropoutLayer`` a ``theano.sandbox.rng_mrg.MRG_RandomStreams``
seeded with ``get_rng().randint(1, 2147462579)`` when the layer is built. Its mask is
``srng.binomial(shape, p=retain)``, that is ``uniform(shape) < retain``: a ``binomial``
call takes ``n_streams`` sub-streams (60 * 256 when the shape is symbolic, as with the
tutorial's ``None`` batch size), spaced 2**72 draws apart and starting from the stream
state, then jumps the stream state 2**134 draws ahead; element ``i`` of every mask drawn
by that call comes from sub-stream ``i % n_streams``, each sub-stream continuing where
it stopped. The uniform number is ``float32(x11 - x21 mod M1) * 4.6566126e-10f``
(with ``floatX=float64``, ``(x11 - x21 mod M1) * 2**-31`` in float64), which this module
compares as an integer with the equivalent threshold.

:class:`MaskStream` draws one layer's masks step by step on the CPU, with Theano's own
recurrence vectorised across sub-streams in uint32 arithmetic; :func:`jump_matrices`
gives the matrix powers with which an engine computes a whole epoch's masks at once.
Both give Theano's masks bit for bit (the tests compare them with the real library).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["M1", "M2", "N_STREAMS", "MaskStream", "jump_matrices", "keep_threshold",
           "stream_states", "substreams"]

M1 = 2147483647  # 2**31 - 1
M2 = 2147462579  # 2**31 - 21069
#: Sub-streams of a ``binomial`` call whose shape is symbolic (``guess_n_streams``).
N_STREAMS = 60 * 256
#: float32(1 / (2**31 + 65)): Theano's normalisation of a float32 sample.
_NORM32 = np.float32(4.6566126e-10)
#: 2**-31: its normalisation of a float64 sample.
_NORM64 = np.float64(4.656612873077392578125e-10)

# One step of each component as a 3x3 matrix (Theano's A1p0 and A2p0), and the jumps
# by 2**72 (between sub-streams) and 2**134 (between calls) that Theano hard-codes.
_A1 = np.array([[0, 4194304, 129], [1, 0, 0], [0, 1, 0]], np.int64)
_A2 = np.array([[32768, 0, 32769], [1, 0, 0], [0, 1, 0]], np.int64)
_A1P72 = np.array([[1516919229, 758510237, 499121365], [1884998244, 1516919229, 335398200],
                   [601897748, 1884998244, 358115744]], np.int64)
_A2P72 = np.array([[1228857673, 1496414766, 954677935], [1133297478, 1407477216, 1496414766],
                   [2002613992, 1639496704, 1407477216]], np.int64)
_A1P134 = np.array([[1702500920, 1849582496, 1656874625], [828554832, 1702500920, 1512419905],
                    [1143731069, 828554832, 102237247]], np.int64)
_A2P134 = np.array([[796789021, 1464208080, 607337906], [1241679051, 1431130166, 1464208080],
                    [1401213391, 1178684362, 1431130166]], np.int64)


def _matvec(A: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    """``A @ v mod m`` for each row of ``v`` (..., 3), exactly in int64."""
    return ((A[None] * v[:, None, :]) % m).sum(-1) % m


def _matmul(A: np.ndarray, B: np.ndarray, m: int) -> np.ndarray:
    """``A @ B mod m`` for 3x3 matrices (or stacks of them), exactly in int64."""
    return ((A[..., :, :, None] * B[..., None, :, :]) % m).sum(-2) % m


def substreams(rstate: np.ndarray, n: int) -> np.ndarray:
    """``MRG_RandomStreams.get_substream_rstates``: ``n`` states 2**72 draws apart.

    Parameters
    ----------
    rstate : numpy.ndarray
        The stream state (6 integers) the first sub-stream starts from.
    n : int
        How many sub-streams.

    Returns
    -------
    numpy.ndarray
        (n, 6) int64; row ``i`` is ``rstate`` jumped ``i * 2**72`` draws ahead.
    """
    rows = np.empty((n, 6), np.int64)
    rows[0] = rstate
    jump1, jump2, have = _A1P72.copy(), _A2P72.copy(), 1
    while have < n:  # rows [have, 2 have) are rows [0, have) jumped by have * 2**72
        k = min(have, n - have)
        rows[have:have + k, :3] = _matvec(jump1, rows[:k, :3], M1)
        rows[have:have + k, 3:] = _matvec(jump2, rows[:k, 3:], M2)
        have += k
        jump1, jump2 = _matmul(jump1, jump1, M1), _matmul(jump2, jump2, M2)
    return rows


def stream_states(seed: int, calls: int = 1, n_streams: int = N_STREAMS) -> list[np.ndarray]:
    """The sub-stream states of the first ``calls`` ``binomial`` calls of
    ``MRG_RandomStreams(seed)``, each (n_streams, 6) int64.

    Raises
    ------
    ValueError
        If ``seed`` is not in [1, M2), as Theano requires.
    """
    if not 1 <= int(seed) < M2:
        raise ValueError(f"an MRG seed must be in [1, {M2}), got {seed}")
    rstate = np.full(6, int(seed), np.int64)
    states = []
    for _ in range(calls):
        states.append(substreams(rstate, n_streams))
        rstate = np.concatenate([_matvec(_A1P134, rstate[None, :3], M1)[0],
                                 _matvec(_A2P134, rstate[None, 3:], M2)[0]])
    return states


def keep_threshold(keep: float, floatx: str = "float32") -> int:
    """The integer ``t`` such that a draw is kept (``uniform < keep``) iff ``d < t``.

    ``d`` is Theano's ``x11 - x21 mod M1`` in [1, M1]; in float32 its uniform number is
    ``float32(d) * 4.6566126e-10f``, compared with ``keep`` as Theano compares them (a
    float32 sample with a float32 constant, or with a float64 one when ``keep`` has no
    exact float32 value); in float64 (``floatx="float64"``) it is ``d * 2**-31``
    compared in float64 (so keep 0.5 is ``d < 2**30``). Either is monotone in ``d``.
    """
    exact32 = floatx == "float32" and float(np.float32(keep)) == keep
    limit = np.float32(keep) if exact32 else np.float64(keep)

    def sample(d: int) -> np.floating:
        if floatx == "float64":
            return np.float64(d) * _NORM64
        value = np.float32(d) * _NORM32
        return value if exact32 else np.float64(value)

    low, high = 1, M1 + 1  # the first d whose sample is not below ``keep`` is in here
    while low < high:
        mid = (low + high) // 2
        if sample(mid) < limit:
            low = mid + 1
        else:
            high = mid
    return low


class MaskStream:
    """One dropout layer's masks, drawn as Theano's ``binomial`` draws them, step by step.

    Parameters
    ----------
    states : numpy.ndarray
        (n_streams, 6) sub-stream states (see :func:`stream_states`).
    keep : float
        Probability of keeping a unit (``1 - p``).
    floatx : {"float32", "float64"}
        The precision of Theano's samples (see :func:`keep_threshold`).
    """

    def __init__(self, states: np.ndarray, keep: float, floatx: str = "float32") -> None:
        self.keep = keep
        self._x = np.ascontiguousarray(np.asarray(states).T, np.uint32)  # x11 .. x23 rows
        self._threshold = np.uint32(keep_threshold(keep, floatx) - 1)
        self._buffers = np.empty((4, self._x.shape[1]), np.uint32)

    @property
    def states(self) -> np.ndarray:
        """The sub-streams' states now, (n_streams, 6) int64 (a copy)."""
        return self._x.T.astype(np.int64)

    def draw(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next mask of ``shape`` (bool, True = kept), advancing the sub-streams."""
        size = int(np.prod(shape))
        out = np.empty(size, bool)
        n = self._x.shape[1]
        for start in range(0, size, n):
            self._step(min(n, size - start), out[start:start + n])
        return out.reshape(shape)

    def _step(self, c: int, out: np.ndarray) -> None:
        """One draw from each of the first ``c`` sub-streams (Theano's C loop, vectorised).

        uint32 arithmetic: every sum below is under 2 * M, where ``min(y, y - M)``
        (wrapping) is ``y mod M``.
        """
        u32 = np.uint32
        x11, x12, x13, x21, x22, x23 = (row[:c] for row in self._x)
        y, b, t, a = (buffer[:c] for buffer in self._buffers)
        # first component: y = 2**22 x12 + 129 x13 mod M1, with M1 = 2**31 - 1
        np.left_shift(x12, u32(23), out=y)
        np.right_shift(y, u32(1), out=y)
        y += np.right_shift(x12, u32(9), out=t)
        np.left_shift(x13, u32(8), out=t)
        y += np.right_shift(t, u32(1), out=t)
        y += np.right_shift(x13, u32(24), out=t)
        np.minimum(y, np.subtract(y, u32(M1), out=t), out=y)
        y += x13
        np.minimum(y, np.subtract(y, u32(M1), out=t), out=y)
        # second component: b = 2**15 x21 + (2**15 + 1) x23 mod M2
        np.left_shift(x21, u32(16), out=a)
        np.right_shift(a, u32(1), out=a)
        np.right_shift(x21, u32(16), out=t)
        a += np.multiply(t, u32(21069), out=t)
        np.minimum(a, np.subtract(a, u32(M2), out=t), out=a)
        np.left_shift(x23, u32(16), out=b)
        np.right_shift(b, u32(1), out=b)
        np.right_shift(x23, u32(16), out=t)
        b += np.multiply(t, u32(21069), out=t)
        np.minimum(b, np.subtract(b, u32(M2), out=t), out=b)
        b += x23
        np.minimum(b, np.subtract(b, u32(M2), out=t), out=b)
        b += a
        np.minimum(b, np.subtract(b, u32(M2), out=t), out=b)
        x13[:], x12[:], x11[:] = x12, x11, y
        x23[:], x22[:], x21[:] = x22, x21, b
        # d - 1 = (y - b - 1) mod M1, as the smaller of the two wrapped candidates
        np.subtract(y, b, out=t)
        t -= u32(1)
        np.minimum(t, np.add(t, u32(M1), out=a), out=t)
        np.less(t, self._threshold, out=out)


@functools.lru_cache(maxsize=8)
def jump_matrices(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Each component's one-step matrix to the powers 1 .. ``count``, (count, 3, 3) int64.

    Row 0 of power ``k`` times a sub-stream's state gives its ``k``-th draw's ``x11``
    (first component) or ``x21`` (second), so all of an epoch's draws can be computed
    at once, independently of each other.
    """
    powers1 = np.empty((count, 3, 3), np.int64)
    powers2 = np.empty((count, 3, 3), np.int64)
    p1, p2 = _A1.copy(), _A2.copy()
    for k in range(count):
        powers1[k], powers2[k] = p1, p2
        p1, p2 = _matmul(_A1, p1, M1), _matmul(_A2, p2, M2)
    powers1.flags.writeable = powers2.flags.writeable = False  # shared by the cache
    return powers1, powers2
