"""The ``mnist-cnn`` command: a thin layer over the package's functions.

Every expected failure (missing data, a bad file, an unavailable device...) is printed
as one line ``mnist-cnn: error: ...`` with exit code 1; Ctrl-C during training exits
with 130 and SIGTERM with 143, after saying how to resume.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_cnn import __version__, defaults
from mnist_cnn.errors import MnistCnnError, TrainingInterrupted

PROG = "mnist-cnn"


# ------------------------------------------------------------------ argument types

class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, pointing at ``--help``."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _whole(minimum: int, maximum: int | None = None) -> Any:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{upper}, got {value}")
        return value
    parse.__name__ = "whole number"
    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file or folder name, got an empty one")
    return text


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="DIR", type=_path,
        help="folder of the four MNIST files (default: $MNIST_DATA_DIR, else the "
             "per-user cache folder)")


def _add_device(parser: argparse.ArgumentParser, training: bool = False) -> None:
    parser.add_argument("--device", default=None if training else defaults.DEVICE,
                        choices=["auto", "cpu", "cuda", "mps"],
                        help="where to compute; auto picks CUDA when PyTorch sees a GPU "
                             f"(default: {defaults.DEVICE}"
                             + (", or the checkpoint's when resuming)" if training else ")"))


def _threads(text: str) -> int | str:
    return "auto" if text == "auto" else _whole(1)(text)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    from mnist_cnn.nets.engines import FLOAT64_ENGINES

    parser.add_argument("--threads", type=_threads, metavar="N|auto",
                        help="CPU threads: auto fits them to the cores other processes leave "
                             "free; a number fixes them; either way the same seed gives the "
                             f"same weights (default: {defaults.THREADS}, or the "
                             "checkpoint's when resuming)")
    parser.add_argument("--shards", type=_whole(1), metavar="N",
                        help="on a CPU, cut each batch into N fixed slices whose gradients "
                             "are computed one per thread and added in order; part of the "
                             "arithmetic (1: the whole batch at once) (default: one per "
                             f"{defaults.SHARD_IMAGES} images, at most {defaults.MAX_SHARDS})")
    parser.add_argument("--floatx", choices=list(defaults.FLOATXS),
                        help="precision of weights and arithmetic, Theano's floatX; float64 "
                             f"on the {' and '.join(FLOAT64_ENGINES)} engines (default: "
                             f"{defaults.FLOATX})")


def _add_engine(parser: argparse.ArgumentParser, training: bool) -> None:
    from mnist_cnn.nets.engines import INFERENCE_ENGINES, TRAINING_ENGINES, describe

    if training:
        parser.add_argument(
            "--engine", choices=TRAINING_ENGINES,
            help=f"{describe()} (default: {defaults.ENGINE}, or the checkpoint's when "
                 "resuming)")
    else:
        parser.add_argument(
            "--engine", default=defaults.INFERENCE_ENGINE, choices=INFERENCE_ENGINES,
            help="which engine computes: auto uses numpy for a few images and PyTorch for "
                 f"many; {describe()} (default: {defaults.INFERENCE_ENGINE})")


# ------------------------------------------------------------------------ commands

def _download_arguments(sub: Any) -> None:
    p = sub.add_parser("download", help="fetch and verify the MNIST files",
                       description="Download the four MNIST files (hash-checked, mirrors "
                                   "tried in order) unless already present and intact, "
                                   "and print where they are.")
    _add_data_dir(p)
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="base URL to fetch from instead of the built-in mirrors "
                        "(repeat to try several in order)")
    p.add_argument("--timeout", type=_number, default=defaults.DOWNLOAD_TIMEOUT,
                   metavar="SECONDS",
                   help="give up on a server silent for this long "
                        f"(default: {defaults.DOWNLOAD_TIMEOUT:g})")


def _download(args: argparse.Namespace) -> int:
    from mnist_cnn.storage.mnist_data import MIRRORS, download_mnist

    paths = download_mnist(args.data_dir, mirrors=args.mirror or MIRRORS,
                           timeout=args.timeout)
    for path in paths.values():
        print(path)
    print(f"MNIST files verified in {Path(next(iter(paths.values()))).parent}")
    return 0


def _train_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train a network and save model.npz",
        description="Train one of the tutorial's networks on MNIST and write model.npz "
                    "(the tutorial's format), model.json (its sidecar), history.csv and "
                    "checkpoint.npz to --out. The defaults reproduce the blog (5 epochs, "
                    "batch 50); the tutorial's own mnist.py used --batch-size 500. "
                    "With --resume, options not given are the checkpoint's.")
    p.add_argument("--model", metavar="NAME",
                   help="cnn, mlp or custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID "
                        f"(default: {defaults.MODEL})")
    p.add_argument("--recipe", choices=list(defaults.RECIPES),
                   help="tutorial: Nesterov momentum with dropout, the blog's 5 epochs at "
                        "batch 50; fast: a modern recipe for the same layers, not the "
                        "tutorial's (2 epochs at batch 192, no dropout, Adam warming up "
                        "to 4e-3 and decaying to 0); --epochs, --batch-size, --lr and "
                        f"--momentum override its values (default: {defaults.RECIPE})")
    p.add_argument("--augment", action="store_true", default=None,
                   help="transform every training batch afresh (rotation, scale, shear, "
                        "shift, elastic distortion, stroke width) for a model that reads "
                        "real people's digits; pytorch engine only (default: off)")
    p.add_argument("--vary-shapes", action="store_true", default=None,
                   help="with --augment, also write some 1s, 4s and 7s as MNIST's writers "
                        "rarely did: a 1 with a flag, a 7 with a bar, a 4 with a closed "
                        "top (default: off)")
    p.add_argument("--lr-schedule", choices=list(defaults.SCHEDULES), dest="schedule",
                   help="the learning rate: constant (the tutorial's), or cosine: falling to "
                        "0 along half a cosine over the run (default: constant)")
    p.add_argument("--epochs", type=_whole(1), dest="num_epochs", metavar="N",
                   help=f"number of epochs (default: the recipe's, {defaults.EPOCHS} for "
                        "the tutorial)")
    p.add_argument("--batch-size", type=_whole(1), metavar="N",
                   help="mini-batch size (default: the recipe's, "
                        f"{defaults.BATCH_SIZE} for the tutorial)")
    p.add_argument("--lr", type=_number, dest="learning_rate", metavar="RATE",
                   help="learning rate (default: the recipe's, "
                        f"{defaults.LEARNING_RATE} for the tutorial)")
    p.add_argument("--momentum", type=_number, metavar="M",
                   help="momentum (default: the recipe's, "
                        f"{defaults.MOMENTUM} for the tutorial)")
    p.add_argument("--seed", type=_whole(0, 2**32 - 1), metavar="N",
                   help=f"seed of initialisation, batch order and dropout "
                        f"(default: {defaults.SEED})")
    _add_device(p, training=True)
    _add_threads(p)
    _add_engine(p, training=True)
    p.add_argument("--out", default=defaults.RUN_DIR, metavar="DIR", type=_path,
                   help=f"output folder (default: {defaults.RUN_DIR})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out (--epochs may be "
                        "raised)")
    _add_data_dir(p)


def _train(args: argparse.Namespace) -> int:
    from mnist_cnn.storage.runs import RunFolder
    from mnist_cnn.training.loop import resume, train
    from mnist_cnn.training.settings import Settings

    given = {name: value for name in Settings.names()
             if (value := getattr(args, name, None)) is not None}
    _output_folder(args.out, "--out")
    run = RunFolder(args.out)
    if args.resume:
        if not run.checkpoint.is_file():
            raise MnistCnnError(f"no checkpoint at {run.checkpoint}: nothing to resume "
                                "(train without --resume to start a new run)")
        settings = None
    else:  # every setting checked before the folder is made or the data loaded
        settings = Settings.of(given.pop("recipe", None), **given)
        settings.validate()
    run.prepare()
    try:
        if settings is None:
            result = resume(run.checkpoint, **given, data_dir=args.data_dir)
        else:
            result = train(settings, data_dir=args.data_dir, checkpoint=run.checkpoint)
    except BaseException:
        run.discard_if_unused()
        raise
    paths = run.save(result)
    print(f"Saved {paths['model']} (sidecar {paths['metadata'].name}, "
          f"{paths['history'].name}) in {run.folder}")
    return 0


def _evaluate_arguments(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="test loss, accuracy and per-digit counts",
                       description="Evaluate a weights file (ours or the original "
                                   "tutorial's model.npz) on the 10,000 MNIST test images.")
    p.add_argument("--weights", required=True, metavar="FILE", type=_path,
                   help="a model.npz file")
    _add_device(p)
    _add_engine(p, training=False)
    _add_data_dir(p)


def _evaluate(args: argparse.Namespace) -> int:
    from mnist_cnn.nets import engines
    from mnist_cnn.nets.inference import predict_proba
    from mnist_cnn.results import Evaluation
    from mnist_cnn.storage.mnist_data import load_dataset
    from mnist_cnn.storage.weights_file import load_weights

    if args.engine != "auto":
        engines.get(args.engine)  # an engine that is not installed, before the data
    weights = load_weights(args.weights)
    *_, X_test, y_test = load_dataset(args.data_dir)
    result = Evaluation.from_proba(
        predict_proba(weights, X_test, device=args.device, engine=args.engine), y_test)
    print(f"Weights: {args.weights}")
    print(f"  test loss:\t\t\t{result.loss:.6f}")
    print(f"  test accuracy:\t\t{result.accuracy * 100:.2f} %")
    print("  digit  correct  total  accuracy")
    for digit, (correct, total) in enumerate(result.per_digit):
        print(f"  {digit:>5}  {correct:>7}  {total:>5}  {correct / max(total, 1) * 100:7.2f} %")
    return 0


def _visualize_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "visualize", help="figures: kernels, feature maps, history, confusion, errors",
        description="Write kernels.png, feature_maps_c1.png, feature_maps_c2.png, "
                    "history.png (when the weights' sidecar has a history), confusion.png "
                    "and misclassified.png to --out, and print their paths. Works on the "
                    "original tutorial's model.npz too; an MLP gets the figures that do "
                    "not need convolution layers.")
    p.add_argument("--weights", required=True, metavar="FILE", type=_path,
                   help="a model.npz file")
    p.add_argument("--out", default=defaults.FIGURES_DIR, metavar="DIR", type=_path,
                   help=f"output folder (default: {defaults.FIGURES_DIR})")
    p.add_argument("--image", default=str(defaults.FEATURE_MAP_IMAGE),
                   metavar="INDEX|random",
                   help="training image for the feature maps: an index (0 to 49999), or "
                        f"random (default: {defaults.FEATURE_MAP_IMAGE})")
    p.add_argument("--seed", type=_whole(0, 2**32 - 1), default=defaults.FEATURE_MAP_SEED,
                   metavar="N",
                   help=f"seed of the random image pick (default: {defaults.FEATURE_MAP_SEED})")
    _add_device(p)
    _add_data_dir(p)


def _visualize(args: argparse.Namespace) -> int:
    from mnist_cnn.frontends.figures import (
        plot_confusion,
        plot_feature_maps,
        plot_history,
        plot_kernels,
        plot_misclassified,
        save_figure,
    )
    from mnist_cnn.nets.inference import predict_proba
    from mnist_cnn.storage.mnist_data import load_dataset
    from mnist_cnn.storage.weights_file import load_weights, read_metadata

    if args.image != "random" and not re.fullmatch(r"[0-9]+", args.image):
        raise MnistCnnError(f"--image must be a training-set index or 'random', "
                            f"got {args.image!r}")
    image = "random" if args.image == "random" else int(args.image)
    _output_folder(args.out, "--out")
    weights = load_weights(args.weights)
    meta = read_metadata(args.weights)
    out = Path(args.out)
    figures = {}
    if weights.network.convolutional:
        figures["kernels.png"] = lambda: plot_kernels(weights)
        for layer in (1, 2):
            figures[f"feature_maps_c{layer}.png"] = (
                lambda layer=layer: plot_feature_maps(weights, image, layer, seed=args.seed,
                                                      data_dir=args.data_dir))
    else:
        print("Skipping kernels and feature maps: these are MLP weights, which have no "
              "convolution layers")
    if meta and meta.get("history"):
        figures["history.png"] = lambda: plot_history(meta["history"])
    else:
        print("Skipping history.png: the weights have no sidecar with a training history")
    *_, X_test, y_test = load_dataset(args.data_dir)
    proba = predict_proba(weights, X_test, device=args.device)  # for both figures
    figures["confusion.png"] = lambda: plot_confusion(weights, X_test, y_test, proba=proba)
    figures["misclassified.png"] = lambda: plot_misclassified(weights, X_test, y_test,
                                                              proba=proba)
    for name, make in figures.items():
        print(save_figure(make(), out / name))
    return 0


def _predict_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "predict", help="recognise digits in your own images",
        description="Classify images of single handwritten digits (photos, scans, "
                    "drawings): each is preprocessed the way MNIST was made, then fed to "
                    "the network. One line per image; the exit code is 1 if any image "
                    "could not be read.")
    p.add_argument("images", nargs="+", metavar="FILE|DIR|GLOB",
                   help="image files, folders of images, or glob patterns")
    p.add_argument("--weights", metavar="FILE", type=_path,
                   help="a model.npz (ours or the original tutorial's) (default: the "
                        f"{len(defaults.BUNDLED_SEEDS)} models bundled with the package, "
                        "their probabilities averaged)")
    p.add_argument("--top", type=_whole(1, 10), default=defaults.TOP, metavar="K",
                   help=f"list the K most probable digits, 1 to 10 (default: {defaults.TOP})")
    p.add_argument("--number", action="store_true",
                   help="read each image as a whole number written in a row (or rows): "
                        "print its digits left to right with a probability each")
    p.add_argument("--json", action="store_true", help="print one JSON array instead")
    p.add_argument("--save-preprocessed", metavar="DIR", type=_path,
                   help="also write the 28x28 image the network saw, enlarged, to DIR")
    _add_device(p)


def _predict(args: argparse.Namespace) -> int:
    import json
    import shlex

    from mnist_cnn.errors import ImageError
    from mnist_cnn.reading.predictions import Prediction, Unreadable, predict
    from mnist_cnn.storage.weights_file import load_weights

    if args.save_preprocessed:
        _output_folder(args.save_preprocessed, "--save-preprocessed")
    # Without --weights, the bundled models (read by predict and read_number).
    weights = load_weights(args.weights) if args.weights is not None else None
    found = _expand_images(args.images)
    usable = [path for path, problem in found if problem is None]
    if args.number:
        from mnist_cnn.reading.numbers import NumberReading, read_number

        def read(path: str) -> NumberReading | Unreadable:
            try:
                return read_number(path, weights, top=args.top, device=args.device)
            except ImageError as exc:
                return Unreadable(path, _one_line(exc))

        results = iter([read(path) for path in usable])
    else:
        results = iter(predict(usable, weights, top=args.top, device=args.device,
                               errors="return"))
    names: set[str] = set()
    records = []
    for path, problem in found:
        result = Unreadable(path, f"{path}: {problem}") if problem else next(results)
        record = {"file": path, **result.to_dict()}
        records.append(record)
        if isinstance(result, Unreadable):
            if not args.json:
                print(f"{PROG}: error: {result.error}", file=sys.stderr)
            continue
        digits = [result] if isinstance(result, Prediction) else result.digits
        if args.save_preprocessed:
            stem = Path(path).stem or "image"
            saved = [str(d.save_input(_unique(Path(args.save_preprocessed),
                                              f"{stem}-{i + 1}" if args.number else stem,
                                              names)))
                     for i, d in enumerate(digits)]
            record["preprocessed"] = saved if args.number else saved[0]
        if args.json:
            continue
        if isinstance(result, Prediction):
            ranked = ", ".join(f"{d} ({p:.1%})" for d, p in result.top)
            print(f"{path}: {result.digit} ({result.probability:.1%})  top {args.top}: "
                  f"{ranked}")
            if result.other_digits:
                print(f"{PROG}: note: {path} looks like several digits, not one; to read "
                      f"them as a number: {PROG} predict --number {shlex.quote(path)}",
                      file=sys.stderr)
        else:
            each = ", ".join(f"{d.digit} {d.probability:.1%}" for d in digits)
            print(f"{path}: {result.text}  ({each})")
    if args.json:
        print(json.dumps(records, indent=2))
    return 1 if any("error" in record for record in records) else 0


def _unique(folder: Path, stem: str, used: set[str]) -> Path:
    """``folder/stem.png``, or ``stem-2.png``... where that name is taken in this run."""
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return folder / name


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                   ".pgm", ".ppm"}


def _expand_images(patterns: Sequence[str]) -> list[tuple[str, str | None]]:
    """(path, problem) for each image named by a file, folder or glob pattern."""
    import glob

    found: list[tuple[str, str | None]] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
            found += [(f, None) for f in files] or [(pattern, "no image files in this folder")]
        elif path.exists() or path.is_symlink() or not glob.has_magic(pattern):
            found.append((pattern, None))
        else:
            matches = sorted(glob.glob(pattern))
            found += [(m, None) for m in matches] or [(pattern, "no file matches")]
    return found


def _draw_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "draw", help="a local web page: draw a digit and see what the network reads",
        description="Start a local web server with a page where you draw a digit (mouse, pen "
                    "or finger) or drop an image, and see the network's answer with its ten "
                    "probabilities, the 28x28 image it saw and its 32 C1 feature maps. "
                    "Stop with Ctrl-C.")
    p.add_argument("--weights", metavar="FILE", type=_path,
                   help="a cnn's model.npz (default: the model bundled with the package)")
    p.add_argument("--host", default=defaults.DRAW_HOST, metavar="ADDRESS",
                   help=f"address to listen on (default: {defaults.DRAW_HOST}, this machine "
                        "only; another address lets other machines in, with a warning)")
    p.add_argument("--port", type=_whole(0, 65535), default=defaults.DRAW_PORT, metavar="N",
                   help="port to listen on (default: 0, a free one)")
    p.add_argument("--no-browser", action="store_true",
                   help="do not open the page in the default browser")
    p.add_argument("--collect", metavar="DIR", type=_path,
                   help="keep the drawings you correct in DIR (DIR/4/..., one folder per "
                        "digit) and offer an Adapt button that teaches the model your "
                        "handwriting from them (default: nothing is written)")


def _draw(args: argparse.Namespace) -> int:
    import webbrowser

    from mnist_cnn.frontends.drawing_page import make_server

    server = make_server(args.weights, host=args.host, port=args.port, collect=args.collect)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"{PROG}: warning: listening on {args.host}: other machines can reach this "
              "page; use the default 127.0.0.1 to keep it to this one", file=sys.stderr)
    print(f"Drawing page at {server.url}  (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.", flush=True)
    finally:
        server.server_close()
    return 0


def _legacy_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "legacy", help="set up the real Theano 0.8.2 and Lasagne 0.1 (engine lasagne)",
        description="The lasagne engine runs the tutorial's program on the real Theano "
                    "0.8.2 and Lasagne 0.1, which need a Python 3.6 to 3.9 and numpy 1.x. "
                    "`mnist-cnn legacy setup` finds such a Python (pyenv, uv, python3.9 ... "
                    "on the PATH), builds a virtual environment with pinned versions in the "
                    "cache folder, points Theano at numpy's OpenBLAS, and proves it with a "
                    "small compiled function.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("setup", help="build the legacy environment (needs the internet)",
                           description="Build (or rebuild) the legacy environment.")
    q.add_argument("--python", metavar="PATH", type=_path,
                   help="the Python 3.6 to 3.9 to use (default: the best one found)")


def _legacy(args: argparse.Namespace) -> int:
    from mnist_cnn.nets.engines.legacy.environment import setup

    setup(args.python)
    return 0


def _bench_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="measure speed against the plain PyTorch way",
        description="Measure, in one run: training images/s at batch 50 and 500 for the "
                    "plain PyTorch loop (DataLoader, nn.Sequential, SGD) and for this "
                    "project's trainer; inference images/s; the machine's matrix-multiply "
                    "rate; one `mnist-cnn predict` as a fresh process; load_dataset() cold "
                    "and warm; on CUDA also the blog's 5-epoch run. Each training and "
                    "inference measure runs in a fresh process.")
    p.add_argument("--quick", action="store_true",
                   help="a few batches only: checks that it runs, not speed")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_device(p)
    _add_data_dir(p)


def _bench(args: argparse.Namespace) -> int:
    import json

    from mnist_cnn.frontends.bench import format_table, run_benchmark

    results = run_benchmark(quick=args.quick, data_dir=args.data_dir, device=args.device)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _adapt_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "adapt", help="teach the model your handwriting from your labelled digits",
        description="Fine-tune a copy of the bundled model (or --weights) on your own "
                    "labelled digits, read as `predict` reads images, with MNIST mixed in "
                    "so that it forgets nothing; write model.npz and its sidecar (what it "
                    "was adapted on: counts and hashes, not the images) to --out, and "
                    "report your digits' accuracy before, after (by cross-validation) "
                    "and MNIST's test accuracy after. Then: mnist-cnn predict --weights "
                    "OUT/model.npz ...",
        epilog="DIGITS is a folder with a labels.csv (path,label), or subfolders 0 to 9, "
               "or image files whose names start with the digit (4_closed.png).")
    p.add_argument("digits", metavar="DIGITS", type=_path, help="your labelled digits")
    p.add_argument("--out", type=_path, metavar="DIR", required=True,
                   help="where to write model.npz and model.json")
    p.add_argument("--weights", type=_path, metavar="FILE",
                   help="the model to start from (default: the bundled one)")
    p.add_argument("--folds", type=_whole(0, 100), default=5, metavar="K",
                   help="cross-validation folds for the 'after' figure (0: skip it, "
                        "quicker; default: 5)")
    p.add_argument("--seed", type=_whole(0, 2**32 - 1), default=0, metavar="N",
                   help="seeds the fine-tuning (default: 0)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_data_dir(p)


def _adapt(args: argparse.Namespace) -> int:
    import json

    from mnist_cnn.training.adapt import adapt

    _output_folder(args.out, "--out")
    if args.weights is not None:
        from mnist_cnn.storage.weights_file import load_weights

        load_weights(args.weights)  # a bad file, before the digits are read
    result = adapt(args.digits, args.out, weights=args.weights, folds=args.folds,
                   seed=args.seed, data_dir=args.data_dir)
    if args.json:
        print(json.dumps({**result.to_dict(), "model": str(Path(args.out) / "model.npz")}))
        return 0
    after = ("not measured (--folds 0)" if result.after is None else
             f"{result.after * 100:.1f} % (by {result.folds}-fold cross-validation)")
    counts = ", ".join(f"{d}: {n}" for d, n in enumerate(result.counts) if n)
    print(f"Adapted on {result.count} digits ({counts}) in {result.seconds:.1f} s")
    print(f"  your digits, before:\t{result.before * 100:.1f} %")
    print(f"  your digits, after:\t{after}")
    print(f"  MNIST test, after:\t{result.mnist_test_accuracy * 100:.2f} %")
    print(f"Saved {Path(args.out) / 'model.npz'} (sidecar model.json); read with: "
          f"mnist-cnn predict --weights {Path(args.out) / 'model.npz'} IMAGE")
    return 0


def _reproduce_arguments(sub: Any) -> None:
    p = sub.add_parser(
        "reproduce", help="many seeded runs of a set of experiments, with statistics",
        description="Run every experiment of a set over its seeds, each run an ordinary "
                    "run folder under the sweep's folder, and report per experiment the "
                    "runs' test accuracy and time (mean, standard deviation, a 95 % "
                    "confidence interval, min and max) beside the claim, as report.md, "
                    "report.json and report.png. Runs already finished are not redone; an "
                    "interrupted one resumes from its checkpoint; Ctrl-C stops the sweep "
                    "cleanly (run it again to go on).",
        epilog="A file of experiments is TOML: `seeds = 5`, then one [[experiment]] table "
               "each with `name`, optional `claim` (per cent), `source`, `seeds`, and any "
               "setting of `mnist-cnn train` by its name in Python (num_epochs, "
               "batch_size, augment, schedule, ...). See docs/reproduce.md.")
    p.add_argument("experiments", nargs="?", default="blog", metavar="SET_OR_FILE",
                   help="'blog' (98.85 %% after 5 epochs, 10 seeds; 99.6 %% after 50, "
                        "with and without --augment, 3 seeds each), 'bundled' (the "
                        f"{len(defaults.BUNDLED_SEEDS)} models bundled with the package) or "
                        "a .toml file (default: blog)")
    p.add_argument("--out", type=_path, metavar="DIR",
                   help=f"the sweep's folder (default: {defaults.SWEEPS_DIR}/NAME)")
    p.add_argument("--seeds", type=_whole(1, 10_000), metavar="N",
                   help="run seeds 0 to N-1 of every experiment instead of its own")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only the experiment of this name (repeatable), e.g. "
                        "--only '5 epochs'")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_whole(1, 1024), metavar="N",
                       help="runs at once on this machine, the cores split between them "
                            "(default: half the cores, at least 1)")
    where.add_argument("--address", metavar="URL",
                       help="a Dask scheduler (tcp://HOST:PORT): run on its cluster "
                            "(pip install 'mnist-cnn[cluster]'; the workers must see "
                            "the sweep's folder)")
    _add_data_dir(p)


def _reproduce(args: argparse.Namespace) -> int:
    from mnist_cnn.experiments.sweep import reproduce

    if args.out is not None:
        _output_folder(args.out, "--out")
    report = reproduce(args.experiments, args.out, seeds=args.seeds, only=args.only,
                       workers=args.workers,
                       address=args.address, data_dir=args.data_dir)
    print(report.to_markdown(), end="", flush=True)
    return 0


def _output_folder(path: str | os.PathLike, option: str) -> None:
    """Refuse an output folder that is a file, before anything is done."""
    if Path(path).exists() and not Path(path).is_dir():
        raise MnistCnnError(f"{option} {path} is a file, not a folder; choose a folder")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: Each command: the function that adds its arguments, and the one that runs it.
_COMMANDS = {
    "download": (_download_arguments, _download),
    "train": (_train_arguments, _train),
    "evaluate": (_evaluate_arguments, _evaluate),
    "visualize": (_visualize_arguments, _visualize),
    "predict": (_predict_arguments, _predict),
    "draw": (_draw_arguments, _draw),
    "adapt": (_adapt_arguments, _adapt),
    "reproduce": (_reproduce_arguments, _reproduce),
    "legacy": (_legacy_arguments, _legacy),
    "bench": (_bench_arguments, _bench),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mnist-cnn`` and its subcommands."""
    parser = _Parser(
        prog=PROG,
        description="The Lasagne/Theano MNIST CNN tutorial, reproduced faithfully.",
        epilog="Run `mnist-cnn COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for arguments, _ in _COMMANDS.values():
        arguments(sub)
    return parser


#: The exit code of a bug of ours (BSD's EX_SOFTWARE).
_INTERNAL_ERROR = 70


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mnist-cnn`` with the given arguments; returns the exit code."""
    from mnist_cnn.interrupts import sigterm_as_interrupt

    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            return _COMMANDS[args.command][1](args)
    except TrainingInterrupted as exc:
        print(f"{PROG}: {_one_line(exc)}", file=sys.stderr)
        if exc.checkpoint is not None and args.command == "train":
            print(f"{PROG}: continue with: {PROG} train --out {args.out} --resume",
                  file=sys.stderr)
        elif args.command == "reproduce":
            print(f"{PROG}: each run kept its last checkpoint; run the same command again "
                  "to go on", file=sys.stderr)
        return 128 + int(exc.signal)
    except MnistCnnError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: error: cannot write or read{where}: "
              f"{_one_line(exc.strerror or exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        number = getattr(exc, "signal", signal.SIGINT)
        print(f"{PROG}: {'terminated (SIGTERM)' if number == signal.SIGTERM else 'interrupted'}"
              "; files being written were left as they were", file=sys.stderr)
        if args.command == "reproduce":
            print(f"{PROG}: each run kept its last checkpoint; run the same command again "
                  "to go on", file=sys.stderr)
        return 128 + number
    except Exception:  # not bad input but a bug of ours: show where, ask for a report
        import traceback

        traceback.print_exc()
        print(f"{PROG}: internal error: a bug in mnist-cnn, not in your input; please "
              "report it to the project's issue tracker with the command you ran and the "
              "lines above", file=sys.stderr)
        return _INTERNAL_ERROR
