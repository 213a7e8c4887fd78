"""The CUDA path: graph capture, full float32, agreement with the CPU.

These run where PyTorch sees a CUDA GPU and are skipped elsewhere (CI has none). The
step that the graph captures is tested on the CPU in test_engines_pytorch.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_cnn import predict_proba, train
from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines.pytorch.trainer import TorchTrainer
from mnist_cnn.nets.spec import initialise
from mnist_cnn.reading.predictions import bundled_weights_path
from mnist_cnn.storage.mnist_data import minibatch_indices
from mnist_cnn.storage.weights_file import load_weights
from mnist_cnn.training.settings import Settings

pytestmark = [pytest.mark.mnist, pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="needs a CUDA GPU")]


def _epoch(trainer, order):
    return np.concatenate(list(trainer.train_epoch(order)))


def test_cuda_graph_replay_gives_the_eager_steps_numbers_bit_for_bit(mnist):
    data = (mnist[0][:5000], mnist[1][:5000], mnist[2][:500], mnist[3][:500])
    order = minibatch_indices(5000, 50, shuffle=True, rng=0)
    runs = []
    for graphs in (True, False):
        weights, seeds = initialise("cnn", np.random.RandomState(0))
        trainer = TorchTrainer(weights, [mrg.stream_states(s)[0] for s in seeds],
                               Settings(device="cuda", shards=1), data, graphs=graphs)
        assert trainer.resident and trainer.graphs == graphs
        runs.append((_epoch(trainer, order), trainer.get_state().weights))
    (graph_losses, graph_w), (eager_losses, eager_w) = runs
    np.testing.assert_array_equal(graph_losses, eager_losses)
    for a, b in zip(graph_w, eager_w, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cuda_training_reaches_97_percent_in_one_epoch_with_identical_repeats(mnist):
    runs = [train("cnn", num_epochs=1, seed=0, device="cuda", data=mnist, verbose=False)
            for _ in range(2)]
    assert runs[0].device.startswith("cuda")
    assert runs[0].history[0].val_accuracy >= 0.97
    for a, b in zip(runs[0].weights, runs[1].weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cuda_inference_agrees_with_the_cpu_in_full_float32(mnist):
    """TF32 would miss this tolerance: it rounds the inputs of each product to 10 bits."""
    weights = load_weights(bundled_weights_path())
    X = mnist[4][:3000]
    on_gpu = predict_proba(weights, X, device="cuda", engine="pytorch")
    on_cpu = predict_proba(weights, X, device="cpu", engine="pytorch")
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-5)
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).all()
