"""mnist_cnn.nets.mrg: Theano's MRG31k3p streams, as Lasagne's dropout draws its masks.

Checked here against an independent scalar port of Theano's ``mrg_next_value`` and its
stream set-up; test_engines_legacy.py checks the same against the real library.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import M1, M2, matrix_power_mod, mrg_next

from mnist_cnn.nets import mrg

A1 = [[0, 4194304, 129], [1, 0, 0], [0, 1, 0]]
A2 = [[32768, 0, 32769], [1, 0, 0], [0, 1, 0]]


def jump(row: np.ndarray, steps: int) -> list[int]:
    first = matrix_power_mod(A1, steps, M1)
    second = matrix_power_mod(A2, steps, M2)
    x, y = [int(v) for v in row[:3]], [int(v) for v in row[3:]]
    return ([sum(first[i][k] * x[k] for k in range(3)) % M1 for i in range(3)]
            + [sum(second[i][k] * y[k] for k in range(3)) % M2 for i in range(3)])


def test_sub_streams_start_2_to_72_draws_apart_and_calls_2_to_134_apart():
    first, second = mrg.stream_states(12345, calls=2, n_streams=4)
    assert first[0].tolist() == [12345] * 6
    for i in range(3):
        assert first[i + 1].tolist() == jump(first[i], 2**72)
    assert second[0].tolist() == jump(first[0], 2**134)


def test_masks_are_theanos_draws_element_by_element_stream_by_stream():
    states = mrg.stream_states(987654, n_streams=7)[0]
    stream = mrg.MaskStream(states, keep=0.8)
    masks = [stream.draw((3, 5)), stream.draw((2, 4))]  # 15 then 8 draws from 7 streams
    expected = []
    rows = [list(map(int, r)) for r in states]
    for size in (15, 8):  # element i of each call uses sub-stream i % 7, which goes on
        expected.append([mrg_next(rows[i % 7]) < 0.8 for i in range(size)])
    assert masks[0].ravel().tolist() == expected[0]
    assert masks[1].ravel().tolist() == expected[1]
    np.testing.assert_array_equal(stream.states, np.array(rows))


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.7, 0.9])
def test_the_integer_threshold_decides_as_the_float32_sample_does(keep):
    threshold = mrg.keep_threshold(keep)
    d = np.random.default_rng(0).integers(1, M1 + 1, 200_000)
    d = np.concatenate([d, np.arange(threshold - 300, threshold + 300)])
    samples = d.astype(np.float32) * np.float32(4.6566126e-10)
    below = (samples < np.float32(keep)) if float(np.float32(keep)) == keep else (
        samples.astype(np.float64) < keep)
    np.testing.assert_array_equal(d < threshold, below)


@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_in_float64_the_threshold_is_theanos_float64_sample_d_times_2_to_the_minus_31(keep):
    threshold = mrg.keep_threshold(keep, "float64")
    d = np.arange(threshold - 300, threshold + 300)
    np.testing.assert_array_equal(d < threshold, d * 2.0**-31 < keep)
    if keep == 0.5:
        assert threshold == 2**30 != mrg.keep_threshold(keep)


def test_the_keep_rate_is_the_asked_probability():
    stream = mrg.MaskStream(mrg.stream_states(42)[0], keep=0.5)
    assert abs(stream.draw((500, 512)).mean() - 0.5) < 0.005


def test_bad_seeds_are_refused_as_theano_refuses_them():
    for seed in (0, M2):
        with pytest.raises(ValueError, match="seed"):
            mrg.stream_states(seed)
