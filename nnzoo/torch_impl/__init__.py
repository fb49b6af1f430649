"""PyTorch builds: one module per family, each with `build(spec) -> nn.Module`.

Mirrors `nnzoo.keras_impl` file for file and block for block; module paths here are the layer
names there.
"""
