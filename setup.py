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
    package_data={"mnist_cnn": ["bundled/*.npz", "bundled/*.json", "frontends/page/*.html"]},
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
        "filelock>=3.12",
        "tomli>=1.1; python_version < '3.11'",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3.5", "ruff>=0.5", "hypothesis>=6.100",
                 "build>=1.0", "nbclient>=0.7", "nbformat>=5.7", "ipykernel>=6.0",
                 "ipywidgets>=8", "selenium>=4.20", "mkdocs>=1.6",
                 "mkdocstrings-python>=1.10", "distributed>=2024.1"],
        # Dask's distributed scheduler: `mnist-cnn reproduce --address` runs on a cluster.
        "cluster": ["distributed>=2024.1"],
        # JupyterLab to open the notebook, nbclient for `jupyter execute` (headless), the
        # kernel, and ipywidgets for progress bars drawn as widgets.
        "notebook": ["jupyterlab>=4", "nbclient>=0.7", "ipykernel>=6.0", "ipywidgets>=8"],
        # The documentation site (mkdocs.yml): `mkdocs build --strict`.
        "docs": ["mkdocs>=1.6", "mkdocstrings-python>=1.10"],
        # PyTensor 3 (the theano engine) needs Python 3.11 or newer.
        "theano": ["pytensor>=3.0,<4; python_version >= \"3.11\""],
    },
    entry_points={"console_scripts": ["mnist-cnn=mnist_cnn.frontends.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
