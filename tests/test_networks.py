"""mnist_cnn.networks: model names, parameter shapes, Lasagne's initialisation."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn.errors import WeightsError
from mnist_cnn.networks import NetworkSpec, infer_spec, init_weights, parse_model_name


def test_cnn_has_the_tutorials_160362_parameters_in_lasagne_order():
    shapes = NetworkSpec("cnn").param_shapes()
    assert shapes == [(32, 1, 5, 5), (32,), (32, 32, 5, 5), (32,), (512, 256), (256,),
                      (256, 10), (10,)]
    assert sum(int(np.prod(s)) for s in shapes) == 160362


@pytest.mark.parametrize("name, shapes", [
    ("mlp", [(784, 800), (800,), (800, 800), (800,), (800, 10), (10,)]),
    ("custom_mlp:1,100,0,0.5", [(784, 100), (100,), (100, 10), (10,)]),
    ("custom_mlp:0,5,0.1,0", [(784, 10), (10,)]),
])
def test_mlp_names_give_the_tutorials_shapes(name, shapes):
    assert parse_model_name(name).param_shapes() == shapes


def test_model_names_round_trip():
    for name in ("cnn", "mlp", "custom_mlp:3,500,0.1,0.4"):
        assert parse_model_name(name).name == name
    assert parse_model_name("custom_mlp:2,800,0.2,0.5").name == "mlp"


@pytest.mark.parametrize("bad", ["resnet", "custom_mlp:2,800", "custom_mlp:a,b,c,d",
                                 "custom_mlp:2,800,1.5,0.5", "custom_mlp:-1,800,0,0"])
def test_bad_model_names_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match=r"cnn|custom_mlp:DEPTH,WIDTH"):
        parse_model_name(bad)


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


def test_network_is_inferred_from_shapes():
    assert infer_spec(init_weights("cnn")).name == "cnn"
    assert infer_spec(init_weights("mlp")).name == "mlp"
    assert infer_spec(init_weights("custom_mlp:3,64,0,0")).param_shapes() == \
        parse_model_name("custom_mlp:3,64,0,0").param_shapes()


def test_unknown_shapes_are_refused():
    with pytest.raises(WeightsError, match="match none of the tutorial's networks"):
        infer_spec(init_weights("cnn")[:6])
