"""The ``mnist-cnn`` command: a thin layer over the package's functions.

Every expected failure (missing data, bad weights file, unavailable device...) is
printed as one line ``mnist-cnn: error: ...`` with exit code 1; Ctrl-C during training
exits with 130 after saying how to resume.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import MnistCnnError, TrainingInterrupted

PROG = "mnist-cnn"


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="folder of the four MNIST files (default: $MNIST_DATA_DIR, else the "
             "per-user cache folder)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where to compute; auto picks CUDA when present (default: auto)")


def _add_weights_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help="a model.npz file")


def _add_engine(parser: argparse.ArgumentParser, default: str | None = "pytorch") -> None:
    parser.add_argument(
        "--engine", default=default, choices=["pytorch", "theano"],
        help="pytorch, or theano: the tutorial's symbolic program on PyTensor, on the CPU "
             "(needs pip install 'mnist-cnn[theano]') [default: pytorch]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mnist-cnn`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The Lasagne/Theano MNIST CNN tutorial, reproduced on PyTorch.",
        epilog="Run `mnist-cnn COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("download", help="fetch and verify the MNIST files",
                       description="Download the four MNIST files (hash-checked, mirrors "
                                   "tried in order) unless already present and intact, "
                                   "and print where they are.")
    _add_data_dir(p)
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="base URL to fetch from instead of the built-in mirrors "
                        "(repeat to try several in order)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up on a server silent for this long (default: 30)")

    p = sub.add_parser(
        "train", help="train a network and save model.npz",
        description="Train one of the tutorial's networks on MNIST and write model.npz "
                    "(the tutorial's format), model.json (its sidecar), history.csv and "
                    "checkpoint.npz to --out. The defaults reproduce the blog (5 epochs, "
                    "batch 50); the tutorial's own mnist.py used --batch-size 500.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None,
                   help="cnn, mlp or custom_mlp:DEPTH,WIDTH,DROP_IN,DROP_HID "
                        "[default: cnn]")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs [default: 5]")
    p.add_argument("--batch-size", type=int, default=None,
                   help="mini-batch size [default: 50]")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of Nesterov momentum [default: 0.01]")
    p.add_argument("--momentum", type=float, default=None, help="momentum [default: 0.9]")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of init, shuffling and dropout [default: 0]")
    _add_device(p)
    _add_engine(p, default=None)  # None: pytorch, or the checkpoint's when resuming
    p.add_argument("--out", default="run", metavar="DIR", help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out (settings not "
                        "given are taken from it; --epochs may be raised)")
    _add_data_dir(p)

    p = sub.add_parser("evaluate", help="test loss, accuracy and per-digit counts",
                       description="Evaluate a weights file (ours or the original "
                                   "tutorial's model.npz) on the 10,000 MNIST test images.")
    _add_weights_file(p)
    _add_device(p)
    _add_engine(p)
    _add_data_dir(p)

    p = sub.add_parser(
        "visualize", help="figures: kernels, feature maps, history, confusion, errors",
        description="Write kernels.png, feature_maps_c1.png, feature_maps_c2.png, "
                    "history.png (when the weights' sidecar has a history), confusion.png "
                    "and misclassified.png to --out, and print their paths. Works on the "
                    "original tutorial's model.npz too; an MLP gets the figures that do "
                    "not need convolution layers.")
    _add_weights_file(p)
    p.add_argument("--out", default="figures", metavar="DIR",
                   help="output folder (default: figures)")
    p.add_argument("--image", default="random", metavar="INDEX|random",
                   help="training image for the feature maps: an index, or random "
                        "(default: random)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random image pick (default: 0)")
    _add_device(p)
    _add_data_dir(p)

    p = sub.add_parser(
        "predict", help="recognise digits in your own images",
        description="Classify images of single handwritten digits (photos, scans, "
                    "drawings): each is preprocessed the way MNIST was made, then fed to "
                    "the network. One line per image; the exit code is 1 if any image "
                    "could not be read.")
    p.add_argument("images", nargs="+", metavar="FILE|DIR|GLOB",
                   help="image files, folders of images, or glob patterns")
    p.add_argument("--weights", metavar="FILE",
                   help="a model.npz (ours or the original tutorial's); default: the model "
                        "bundled with the package")
    p.add_argument("--top", type=int, default=3, metavar="K",
                   help="list the K most probable digits (default: 3)")
    p.add_argument("--json", action="store_true", help="print one JSON array instead")
    p.add_argument("--save-preprocessed", metavar="DIR",
                   help="also write the 28x28 image the network saw, enlarged, to DIR")
    _add_device(p)

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
    return parser


def _cmd_download(args: argparse.Namespace) -> int:
    from .data import MIRRORS, download_mnist

    paths = download_mnist(args.data_dir, mirrors=args.mirror or MIRRORS,
                           timeout=args.timeout)
    for path in paths.values():
        print(path)
    print(f"MNIST files verified in {Path(next(iter(paths.values()))).parent}")
    return 0


_TRAIN_DEFAULTS = {"model": "cnn", "epochs": 5, "batch_size": 50, "lr": 0.01,
                   "momentum": 0.9, "seed": 0, "engine": "pytorch"}
_CHECKPOINT_KEYS = {"model": "model", "epochs": "num_epochs", "batch_size": "batch_size",
                    "lr": "learning_rate", "momentum": "momentum", "seed": "seed",
                    "engine": "engine"}


def _cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .results import save_run
    from .train import train

    out = Path(args.out)
    checkpoint = out / "checkpoint.npz"
    settings = dict(_TRAIN_DEFAULTS)
    if args.resume:
        saved = load_checkpoint(checkpoint)
        settings.update({k: saved.config[key] for k, key in _CHECKPOINT_KEYS.items()
                         if key in saved.config})
        print(f"Resuming {checkpoint} after epoch {saved.epoch}")
    settings.update({k: v for k in settings if (v := getattr(args, k)) is not None})
    try:
        result = train(settings["model"], num_epochs=settings["epochs"],
                       batch_size=settings["batch_size"], learning_rate=settings["lr"],
                       momentum=settings["momentum"], seed=settings["seed"],
                       device=args.device, data_dir=args.data_dir, checkpoint=checkpoint,
                       resume=args.resume, engine=settings["engine"])
    except ValueError as exc:  # a bad --model name
        raise MnistCnnError(str(exc)) from None
    paths = save_run(out, result)
    print(f"Saved {paths['model']} (sidecar {paths['metadata'].name}, "
          f"{paths['history'].name}) in {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .inference import evaluation_from_proba, predict_proba
    from .weights import load_weights

    weights = load_weights(args.weights)
    *_, X_test, y_test = load_dataset(args.data_dir)
    proba = predict_proba(weights, X_test, device=args.device, engine=args.engine)
    predicted = proba.argmax(1)
    result = evaluation_from_proba(proba, y_test)
    print(f"Weights: {args.weights}")
    print(f"  test loss:\t\t\t{result.loss:.6f}")
    print(f"  test accuracy:\t\t{result.accuracy * 100:.2f} %")
    print("  digit  correct  total  accuracy")
    for digit in range(10):
        mask = y_test == digit
        correct = int((predicted[mask] == digit).sum())
        print(f"  {digit:>5}  {correct:>7}  {int(mask.sum()):>5}  "
              f"{correct / max(int(mask.sum()), 1) * 100:7.2f} %")
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .inference import predict_proba
    from .networks import infer_spec
    from .viz import (
        plot_confusion,
        plot_feature_maps,
        plot_history,
        plot_kernels,
        plot_misclassified,
        save_figure,
    )
    from .weights import load_weights, read_metadata

    if args.image != "random" and not args.image.isdigit():
        raise MnistCnnError(f"--image must be a training-set index or 'random', "
                            f"got {args.image!r}")
    image = "random" if args.image == "random" else int(args.image)
    weights = load_weights(args.weights)
    meta = read_metadata(args.weights)
    out = Path(args.out)
    figures = {}
    if infer_spec(weights).kind == "cnn":
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


def _save_preprocessed(folder: Path, source: str, image, used: set[str]) -> Path:
    import numpy as np
    from PIL import Image

    from .atomic import atomic_write

    stem = Path(source).stem or "image"
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    pixels = np.clip(np.round(image * 256), 0, 255).astype(np.uint8)
    big = Image.fromarray(pixels).resize((280, 280), Image.Resampling.NEAREST)
    with atomic_write(folder / name) as f:
        big.save(f, format="PNG")
    return folder / name


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from .predict import ImageError, predict, preprocess_image
    from .weights import load_weights

    if args.top < 1:
        raise MnistCnnError(f"--top must be at least 1, got {args.top}")
    weights = load_weights(args.weights) if args.weights else None
    sources, inputs, failures = [], [], {}
    for path, problem in _expand_images(args.images):
        try:
            if problem:
                raise ImageError(f"{path}: {problem}")
            inputs.append(preprocess_image(path))
            sources.append(path)
        except ImageError as exc:
            failures[path] = str(exc)
            if not args.json:
                print(f"{PROG}: error: {exc}", file=sys.stderr)
    batch = np.stack(inputs)[:, None] if inputs else np.zeros((0, 1, 28, 28), np.float32)
    results = predict(batch, weights, top=args.top, device=args.device) if inputs else []
    used: set[str] = set()
    records = []
    for source, result in zip(sources, results, strict=True):
        record = {"file": source, "digit": result.digit, "probability": result.probability,
                  "top": [{"digit": d, "probability": p} for d, p in result.top]}
        if args.save_preprocessed:
            record["preprocessed"] = str(_save_preprocessed(
                Path(args.save_preprocessed), source, result.image, used))
        records.append(record)
        if not args.json:
            ranked = ", ".join(f"{d} ({p:.1%})" for d, p in result.top)
            print(f"{source}: {result.digit} ({result.probability:.1%})  top {args.top}: "
                  f"{ranked}")
    if args.json:
        records += [{"file": f, "error": e} for f, e in failures.items()]
        print(json.dumps(records, indent=2))
    return 1 if failures else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from .bench import format_table, run_benchmark

    results = run_benchmark(quick=args.quick, data_dir=args.data_dir, device=args.device)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


_COMMANDS = {"download": _cmd_download, "train": _cmd_train, "evaluate": _cmd_evaluate,
             "visualize": _cmd_visualize, "predict": _cmd_predict, "bench": _cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mnist-cnn`` with the given arguments; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except TrainingInterrupted as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            print(f"{PROG}: continue with: {PROG} train --out {args.out} --resume",
                  file=sys.stderr)
        return 130
    except MnistCnnError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
