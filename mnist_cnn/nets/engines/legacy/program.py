"""The Lasagne tutorial's program, run by a legacy interpreter for the ``lasagne`` engine.

This file is executed, not imported, by Python 3.6 to 3.9 with the real Theano 0.8.2
and Lasagne 0.1 (see ``mnist-cnn legacy setup``); it must stay valid for those versions
and import nothing from mnist_cnn. It holds the tutorial's own ``build_mlp``,
``build_custom_mlp``, ``build_cnn`` and ``iterate_minibatches``, and compiles
``train_fn`` and ``val_fn`` as the tutorial's ``main()`` does.

The parent process drives it with one JSON object per line on standard input and reads
one JSON object per line from standard output; arrays cross as ``.npy``/``.npz`` files in
a folder the parent owns, loaded without pickle. Every few seconds a heartbeat line
(``{"alive": true}``) says that the program still works; it dies with its parent (a
parent-death signal on Linux, and a check of its parent's pid with each heartbeat).

Usage: ``python -I program.py FOLDER [PARENT_PID [HEARTBEAT_SECONDS]]``.
"""

import ctypes
import ctypes.util
import json
import os
import signal
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")

import lasagne  # noqa: E402
import numpy as np  # noqa: E402
import theano  # noqa: E402
import theano.tensor as T  # noqa: E402

# ----------------------------------------------------------- the tutorial's code

def build_mlp(input_var=None):
    l_in = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    l_in_drop = lasagne.layers.DropoutLayer(l_in, p=0.2)
    l_hid1 = lasagne.layers.DenseLayer(
        l_in_drop, num_units=800, nonlinearity=lasagne.nonlinearities.rectify,
        W=lasagne.init.GlorotUniform())
    l_hid1_drop = lasagne.layers.DropoutLayer(l_hid1, p=0.5)
    l_hid2 = lasagne.layers.DenseLayer(
        l_hid1_drop, num_units=800, nonlinearity=lasagne.nonlinearities.rectify)
    l_hid2_drop = lasagne.layers.DropoutLayer(l_hid2, p=0.5)
    l_out = lasagne.layers.DenseLayer(
        l_hid2_drop, num_units=10, nonlinearity=lasagne.nonlinearities.softmax)
    return l_out


def build_custom_mlp(input_var=None, depth=2, width=800, drop_input=.2, drop_hidden=.5):
    network = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    if drop_input:
        network = lasagne.layers.dropout(network, p=drop_input)
    nonlin = lasagne.nonlinearities.rectify
    for _ in range(depth):
        network = lasagne.layers.DenseLayer(network, width, nonlinearity=nonlin)
        if drop_hidden:
            network = lasagne.layers.dropout(network, p=drop_hidden)
    softmax = lasagne.nonlinearities.softmax
    network = lasagne.layers.DenseLayer(network, 10, nonlinearity=softmax)
    return network


def build_cnn(input_var=None):
    network = lasagne.layers.InputLayer(shape=(None, 1, 28, 28), input_var=input_var)
    network = lasagne.layers.Conv2DLayer(
        network, num_filters=32, filter_size=(5, 5),
        nonlinearity=lasagne.nonlinearities.rectify, W=lasagne.init.GlorotUniform())
    network = lasagne.layers.MaxPool2DLayer(network, pool_size=(2, 2))
    network = lasagne.layers.Conv2DLayer(
        network, num_filters=32, filter_size=(5, 5),
        nonlinearity=lasagne.nonlinearities.rectify)
    network = lasagne.layers.MaxPool2DLayer(network, pool_size=(2, 2))
    network = lasagne.layers.DenseLayer(
        lasagne.layers.dropout(network, p=.5), num_units=256,
        nonlinearity=lasagne.nonlinearities.rectify)
    network = lasagne.layers.DenseLayer(
        lasagne.layers.dropout(network, p=.5), num_units=10,
        nonlinearity=lasagne.nonlinearities.softmax)
    return network


def iterate_minibatches(inputs, targets, batchsize, shuffle=False):
    assert len(inputs) == len(targets)
    if shuffle:
        indices = np.arange(len(inputs))
        np.random.shuffle(indices)
    for start_idx in range(0, len(inputs) - batchsize + 1, batchsize):
        if shuffle:
            excerpt = indices[start_idx:start_idx + batchsize]
        else:
            excerpt = slice(start_idx, start_idx + batchsize)
        yield inputs[excerpt], targets[excerpt]


def build_network(model, input_var):
    """The tutorial's choice of network by name, as in its main()."""
    if model == "mlp":
        return build_mlp(input_var)
    if model.startswith("custom_mlp:"):
        depth, width, drop_in, drop_hid = model.split(":", 1)[1].split(",")
        return build_custom_mlp(input_var, int(depth), int(width), float(drop_in),
                                float(drop_hid))
    if model == "cnn":
        return build_cnn(input_var)
    raise ValueError(f"unrecognized model type {model!r}")


# ----------------------------------------------------------------- the program

class Program:
    """The tutorial's compiled functions for one network, and its data."""

    def __init__(self, model, learning_rate, momentum, dropout, seed, train):
        if seed is not None:
            np.random.seed(seed)
        input_var = T.tensor4("inputs")
        target_var = T.ivector("targets")
        self.network = build_network(model, input_var)
        self.dropout_layers = [layer for layer in lasagne.layers.get_all_layers(self.network)
                               if isinstance(layer, lasagne.layers.DropoutLayer)]
        self.initial_rng = np.random.get_state()
        prediction = lasagne.layers.get_output(self.network, deterministic=not dropout)
        loss = lasagne.objectives.categorical_crossentropy(prediction, target_var).mean()
        self.params = lasagne.layers.get_all_params(self.network, trainable=True)
        updates = lasagne.updates.nesterov_momentum(
            loss, self.params, learning_rate=learning_rate, momentum=momentum)
        self.velocities = [v for v in updates if v not in self.params]
        # The random states of the masks: one shared variable per dropout layer, updated
        # by every call of train_fn.
        self.rstates = [layer._srng.state_updates[0][0] for layer in self.dropout_layers
                        if layer._srng.state_updates]
        test_prediction = lasagne.layers.get_output(self.network, deterministic=True)
        test_loss = lasagne.objectives.categorical_crossentropy(test_prediction,
                                                                target_var).mean()
        test_acc = T.mean(T.eq(T.argmax(test_prediction, axis=1), target_var),
                          dtype=theano.config.floatX)
        if train:
            self.train_fn = theano.function([input_var, target_var], loss, updates=updates)
        self.val_fn = theano.function([input_var, target_var], [test_loss, test_acc])
        self.predict_fn = theano.function([input_var], test_prediction)
        self.data = {}

    def state(self):
        arrays = {}
        for i, value in enumerate(lasagne.layers.get_all_param_values(self.network)):
            arrays[f"w{i}"] = value
        for i, v in enumerate(self.velocities):
            arrays[f"v{i}"] = v.get_value()
        for i, r in enumerate(self.rstates):
            arrays[f"d{i}"] = r.get_value()
        return arrays

    def set_state(self, arrays):
        """Set the parameters, and the velocities and random states that are given."""
        count = len(self.params)
        lasagne.layers.set_all_param_values(
            self.network, [arrays[f"w{i}"] for i in range(count)])
        for i, v in enumerate(self.velocities):
            if f"v{i}" in arrays:
                v.set_value(arrays[f"v{i}"].astype(v.dtype))
        for i, r in enumerate(self.rstates):
            if f"d{i}" in arrays:
                r.set_value(arrays[f"d{i}"].astype(np.int32))

    def epoch(self, batch_size, order, send, snapshots=(), folder=None):
        """The tutorial's training loop over one epoch; ``order`` is what the parent
        expects np.random.shuffle to give, checked batch by batch. After each batch
        count in ``snapshots`` the state is saved to ``folder`` (for the judge)."""
        X_train, y_train = self.data["X_train"], self.data["y_train"]
        losses = []
        batches = iterate_minibatches(X_train, y_train, batch_size, shuffle=True)
        for i, batch in enumerate(batches):
            inputs, targets = batch
            if not (np.array_equal(targets, y_train[order[i]])
                    and np.array_equal(inputs, X_train[order[i]])):
                raise RuntimeError("the tutorial's np.random.shuffle gave another batch "
                                   f"order than the training loop's generator (batch {i})")
            losses.append(float(self.train_fn(inputs, targets)))
            if i + 1 in snapshots:
                path = os.path.join(folder, f"after{i + 1}.npz")
                np.savez(path, **self.state())
                send({"losses": losses, "snapshot": path, "steps": i + 1})
                losses = []
            elif len(losses) == 50 or i + 1 == len(order):
                send({"losses": losses})
                losses = []

    def evaluate(self, X, y):
        """The tutorial's validation loop: batches of 500, mean of the batch means."""
        err = acc = 0.0
        batches = 0
        for inputs, targets in iterate_minibatches(X, y, 500, shuffle=False):
            e, a = self.val_fn(inputs, targets)
            err += float(e)
            acc += float(a)
            batches += 1
        rest = len(X) % 500
        if rest:  # the tutorial's sets divide into 500s; weigh a remainder in exactly
            e, a = self.val_fn(X[-rest:], y[-rest:])
            return ((err * 500 + float(e) * rest) / len(X),
                    (acc * 500 + float(a) * rest) / len(X))
        return err / max(batches, 1), acc / max(batches, 1)


def first_masks(model, seed, batch_size):
    """The masks of the first training step of a network built after np.random.seed(seed).

    Each dropout layer's first ``binomial`` call takes the same sub-streams as the first
    call inside ``train_fn`` would; its output for an input of ones divided by
    1 / (1 - p) is the mask.
    """
    np.random.seed(seed)
    network = build_network(model, T.tensor4("inputs"))
    masks = []
    for layer in lasagne.layers.get_all_layers(network):
        if isinstance(layer, lasagne.layers.DropoutLayer):
            units = int(np.prod(layer.input_shape[1:]))
            ones = T.ones((batch_size, units), dtype=theano.config.floatX)
            out = lasagne.layers.get_output(layer, {layer.input_layer: ones})
            masks.append(theano.function([], out)() * (1 - layer.p) > 0.5)
    return masks


def load(path):
    return np.load(path, allow_pickle=False)


def die_with(parent):
    """Ask Linux to kill this process when its parent dies (PR_SET_PDEATHSIG), then
    check that the parent is still there (it may have died before the request)."""
    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(name).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent and os.getppid() != parent:
        os._exit(1)


def heartbeat(send, parent, seconds):
    """Say "alive" every ``seconds``; exit if the parent is gone (where no signal came)."""
    while True:
        time.sleep(seconds)
        if parent and os.getppid() != parent:
            os._exit(1)
        send({"alive": True})


def main():
    folder = sys.argv[1]
    parent = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    beat = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    die_with(parent)
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else that prints goes to the log, not the channel
    lock = threading.Lock()

    def send(message):
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    threading.Thread(target=heartbeat, args=(send, parent, beat), daemon=True).start()

    send({"ready": True, "versions": {"theano": theano.__version__,
                                      "lasagne": lasagne.__version__,
                                      "numpy": np.__version__,
                                      "python": "{}.{}.{}".format(*sys.version_info[:3])}})
    program = None
    for line in sys.stdin:
        request = json.loads(line)
        command = request.get("command")
        try:
            if command == "quit":
                break
            if command == "build":
                start = time.time()
                program = Program(request["model"], request["learning_rate"],
                                  request["momentum"], request.get("dropout", True),
                                  request.get("seed"), request.get("train", True))
                path = os.path.join(folder, "initial.npz")
                keys = program.initial_rng[1]
                np.savez(path, order_keys=keys, **program.state())
                send({"built": path, "seconds": time.time() - start,
                      "order": [*program.initial_rng[2:5]]})
            elif command == "data":
                for name in ("X_train", "y_train"):
                    program.data[name] = load(request[name])
                send({"loaded": True})
            elif command == "masks":
                path = os.path.join(folder, "masks.npz")
                np.savez(path, *first_masks(request["model"], request["seed"],
                                            request["batch_size"]))
                send({"saved": path})
            elif command == "set_state":
                with load(request["path"]) as archive:
                    program.set_state(dict(archive))
                send({"set": True})
            elif command == "get_state":
                np.savez(request["path"], **program.state())
                send({"saved": request["path"]})
            elif command == "epoch":
                np.random.set_state(("MT19937", load(request["order_keys"]),
                                     request["pos"], request["has_gauss"],
                                     request["cached_gaussian"]))
                program.epoch(request["batch_size"], load(request["order"]), send,
                              request.get("snapshots", ()), folder)
                send({"done": True})
            elif command == "evaluate":
                loss, accuracy = program.evaluate(load(request["X"]), load(request["y"]))
                send({"loss": loss, "accuracy": accuracy})
            elif command == "predict":
                X = load(request["X"])
                batch = request.get("batch_size", 1000)
                parts = [program.predict_fn(X[s:s + batch]) for s in range(0, len(X), batch)]
                np.save(request["out"], np.concatenate(parts) if parts
                        else np.zeros((0, 10), np.float32))
                send({"saved": request["out"]})
            else:
                send({"error": f"unknown command {command!r}"})
        except Exception as exc:  # reported to the parent, which raises it there
            send({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
