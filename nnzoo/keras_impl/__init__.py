"""Keras 3 builds: one module per family, each with `graph(spec) -> (inputs, outputs)` and
`build(spec) -> keras.Model`.

Mirrors `nnzoo.torch_impl` file for file and block for block; each Keras layer is named after
the PyTorch module path of its twin, which is what weight transfer walks.
"""

# Registers nnzoo's Keras classes (ZooModel rebuilds any family from its spec), so that
# `import nnzoo.keras_impl` is all `keras.models.load_model` needs.
from nnzoo.keras_impl import layers as _layers  # noqa: E402,F401
from nnzoo.keras_impl import quiet as _quiet  # noqa: E402,F401  (one TensorFlow warning, see there)
