"""Training data: SFT example builders for the selector and the two reasoner stages."""

from .examples import TARGETS, examples_from_build, examples_from_train_items

__all__ = ["TARGETS", "examples_from_build", "examples_from_train_items"]
