"""The one TensorFlow message nnzoo's Keras builds would otherwise leak into a user's script.

Keras's TensorFlow backend runs every grouped convolution (ResNeXt's) through a new
`tf.function(jit_compile=True)` on each eager call (`keras/src/backend/tensorflow/nn.py`, `conv`:
"grouped convolutions are broken on CPU without XLA"), and after five calls TensorFlow warns that
the function keeps retracing -- advice about Keras's internals that a user cannot act on. The
filter below drops exactly those records (a retracing warning naming Keras's `_conv_xla`) from
the `tensorflow` logger; every other TensorFlow message, the user's own retracing warnings
included, passes. Installing it imports nothing.
"""

from __future__ import annotations

import logging


class KerasGroupedConvRetracing(logging.Filter):
    """Drops TensorFlow's retracing warning about Keras's per-call grouped-convolution function."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "_conv_xla" in message)


def install() -> None:
    """Add the filter to the `tensorflow` logger, once."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, KerasGroupedConvRetracing) for f in logger.filters):
        logger.addFilter(KerasGroupedConvRetracing())


install()
