"""The description layer: one module per family, each a frozen spec dataclass (`SPEC`) and a
variant table (`VARIANTS`: name -> (spec, description)). No framework is imported here.

Adding a family: write `nnzoo/specs/<family>.py`, `nnzoo/torch_impl/<family>.py` and
`nnzoo/keras_impl/<family>.py`, and add the family's name below.
"""

FAMILIES: tuple[str, ...] = (
    "mlp",
    "cnn",
    "recurrent",
    "transformer",
    "resnet",
    "unet",
    "vit",
    "convnext",
    "hybrid",
    "mobilenet",
    "efficientnet",
)
