"""Packaging of mnist-cnn (tool settings live in pyproject.toml)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = next(line.split('"')[1] for line in
               (here / "mnist_cnn" / "__init__.py").read_text().splitlines()
               if line.startswith("__version__"))

setup(
    name="mnist-cnn",
    version=version,
    description="The Lasagne/Theano MNIST CNN tutorial, reproduced faithfully on PyTorch",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mnist_cnn", "mnist_cnn.*"]),
    package_data={"mnist_cnn": ["bundled/*.npz", "bundled/*.json"]},
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "pooch>=1.7",
        "tqdm>=4.60",
        "platformdirs>=3.0",
        "matplotlib>=3.7",
        "pillow>=9.1",
        "scipy>=1.10",
        "scikit-image>=0.22",
    ],
    extras_require={
        "test": ["pytest>=7", "ruff>=0.5", "hypothesis>=6.100", "nbclient>=0.7", "nbformat>=5.7",
                 "ipykernel>=6.0"],
        "theano": ["pytensor>=3.0,<4"],
    },
    entry_points={"console_scripts": ["mnist-cnn=mnist_cnn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
