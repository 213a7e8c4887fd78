"""mnist_cnn.nets.spec: the networks as data, their parameter shapes, Weights, Lasagne's init."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn.errors import WeightsError
from mnist_cnn.nets.spec import (
    Conv,
    Dense,
    Dropout,
    Pool,
    Weights,
    init_weights,
    network,
    network_for,
)


def test_cnn_is_the_tutorials_build_cnn_with_160362_parameters_in_lasagne_order():
    cnn = network("cnn")
    assert cnn.layers == (Conv(32, 5), Pool(), Conv(32, 5), Pool(), Dropout(0.5), Dense(256),
                          Dropout(0.5), Dense(10, softmax=True))
    assert cnn.param_shapes() == [(32, 1, 5, 5), (32,), (32, 32, 5, 5), (32,), (512, 256),
                                  (256,), (256, 10), (10,)]
    assert cnn.num_params() == 160362
    assert cnn.output_shapes()[:4] == [(32, 24, 24), (32, 12, 12), (32, 8, 8), (32, 4, 4)]


@pytest.mark.parametrize("name, shapes", [
    ("mlp", [(784, 800), (800,), (800, 800), (800,), (800, 10), (10,)]),
    ("custom_mlp:1,100,0,0.5", [(784, 100), (100,), (100, 10), (10,)]),
    ("custom_mlp:0,5,0.1,0", [(784, 10), (10,)]),
])
def test_mlp_names_give_the_tutorials_shapes(name, shapes):
    assert network(name).param_shapes() == shapes


def test_dropout_layers_with_probability_zero_are_left_out_as_in_the_tutorial():
    assert network("custom_mlp:2,30,0,0").layers == (Dense(30), Dense(30),
                                                     Dense(10, softmax=True))
    assert network("mlp").dropout_shapes(5) == [((5, 1, 28, 28), 0.2), ((5, 800), 0.5),
                                                ((5, 800), 0.5)]
    assert network("cnn").dropout_shapes(5) == [((5, 32, 4, 4), 0.5), ((5, 256), 0.5)]


def test_model_names_round_trip():
    for name in ("cnn", "mlp", "custom_mlp:3,500,0.1,0.4"):
        assert network(name).name == name
    assert network("custom_mlp:2,800,0.2,0.5").name == "mlp"


@pytest.mark.parametrize("bad", ["resnet", "custom_mlp:2,800", "custom_mlp:a,b,c,d",
                                 "custom_mlp:2,800,1.5,0.5", "custom_mlp:-1,800,0,0",
                                 "custom_mlp:1,0,0,0"])
def test_bad_model_names_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match=r"cnn|custom_mlp:DEPTH,WIDTH"):
        network(bad)


def test_glorot_uniform_bounds_and_zero_biases():
    weights = init_weights("cnn", seed=1)
    for w, (n1, n2, rf) in zip(weights[::2], [(32, 1, 25), (32, 32, 25), (512, 256, 1),
                                               (256, 10, 1)], strict=True):
        bound = np.sqrt(3) * np.sqrt(2 / ((n1 + n2) * rf))
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.95 * bound  # fills the range
        assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.1)  # uniform's std
    for b in weights[1::2]:
        assert not b.any()
    assert all(w.dtype == np.float32 for w in weights)


def test_initialisation_is_seeded():
    a, b, c = init_weights("cnn", 0), init_weights("cnn", 0), init_weights("cnn", 1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not (a[0] == c[0]).all()


def test_network_is_recognised_from_shapes():
    assert network_for([w.shape for w in init_weights("cnn")]).name == "cnn"
    assert network_for([w.shape for w in init_weights("mlp")]).name == "mlp"
    assert network_for([w.shape for w in init_weights("custom_mlp:3,64,0,0")]).param_shapes() \
        == network("custom_mlp:3,64,0,0").param_shapes()


def test_unknown_shapes_are_refused():
    with pytest.raises(WeightsError, match="match none of the tutorial's networks"):
        network_for([w.shape for w in init_weights("cnn")[:6]])


def test_weights_know_their_network_and_convert_float64_to_float32():
    arrays = [w.astype(np.float64) for w in init_weights("mlp")]
    weights = Weights(arrays)
    assert weights.network.name == "mlp" and len(weights) == 6
    assert all(w.dtype == np.float32 for w in weights)
    assert isinstance(weights[:2], list) and weights[0].shape == (784, 800)


@pytest.mark.parametrize("change, message", [
    (lambda w: w[:7], "match none"),
    (lambda w: [w[0].astype(np.int32), *w[1:]], "floating-point"),
    (lambda w: [np.full_like(w[0], np.nan), *w[1:]], "NaN or infinite"),
])
def test_unusable_arrays_are_refused(change, message):
    with pytest.raises(WeightsError, match=message):
        Weights(change(list(init_weights("cnn"))))


def test_weights_of_another_network_than_named_are_refused():
    with pytest.raises(WeightsError, match="do not fit the cnn network"):
        Weights(list(init_weights("mlp")), "cnn")
