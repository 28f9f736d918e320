"""Datasets with Keras's loaders: ``mnist``, ``fashion_mnist``, ``cifar10``, ``imdb``
(downloaded once, verified, cached in ``~/.graphc/datasets``) and ``digits`` (scikit-learn's
bundled 8x8 digits, for offline use)."""
from graphc.keras.datasets import cifar10, digits, fashion_mnist, imdb, mnist

__all__ = ["mnist", "fashion_mnist", "cifar10", "imdb", "digits"]
