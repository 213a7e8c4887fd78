"""mnist_cnn.nets.engines: one place picks an engine; unknown or missing ones are clear errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mnist_cnn import EngineError, evaluate, predict_proba
from mnist_cnn.nets.engines import choose, get
from mnist_cnn.nets.spec import init_weights


def test_auto_is_numpy_for_a_few_images_on_a_cpu_and_pytorch_for_many():
    assert choose("auto", "auto", 10) == "numpy"
    assert choose("auto", "cpu", 256) == "numpy"
    assert choose("auto", "cpu", 257) == "pytorch"
    assert choose("auto", "cuda", 1) == "pytorch"
    assert choose("theano", "cpu", 1) == "theano"


def test_unknown_engines_are_one_error_type_naming_the_choices():
    with pytest.raises(EngineError, match="choose one of pytorch, theano, lasagne, numpy"):
        get("tensorflow")
    with pytest.raises(EngineError, match="for training; choose one of pytorch, theano, la"):
        get("auto", training=True)
    with pytest.raises(EngineError):
        predict_proba(init_weights("cnn"), np.zeros((1, 1, 28, 28), np.float32),
                      engine="jax")


def test_inputs_of_the_wrong_shape_are_refused_before_any_engine_runs():
    from mnist_cnn import MnistCnnError

    with pytest.raises(MnistCnnError, match=r"shape \(N, 1, 28, 28\)"):
        predict_proba(init_weights("cnn"), np.zeros((3, 28, 28), np.float32))
    with pytest.raises(MnistCnnError, match=r"labels must have shape \(2,\)"):
        evaluate(init_weights("cnn"), np.zeros((2, 1, 28, 28), np.float32), np.zeros(3))


def test_without_pytorch_auto_inference_falls_back_to_numpy_and_training_says_how():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from mnist_cnn import predict_proba, train, EngineError\n"
            "from mnist_cnn.nets.spec import init_weights\n"
            "p = predict_proba(init_weights('cnn'), np.zeros((300, 1, 28, 28), np.float32))\n"
            "print(p.shape)\n"
            "try:\n"
            "    train(data=(np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.uint8)) * 3,\n"
            "          verbose=False, num_epochs=1, batch_size=2)\n"
            "except EngineError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "(300, 10)"
    assert "the pytorch engine needs torch, which is not installed: pip install torch" in lines[1]
