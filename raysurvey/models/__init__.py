"""Model zoo: every model built by name (``create_model``), pure PyTorch, no Ray.

``create_model(name, **config)`` (every classifier takes ``num_classes=``; ``spec_cnn``
takes ``attention=``), ``list_models()``, ``get_attention(name, channels)`` for the
attention slot; ``prepare_inputs``/``run_model`` turn a pipeline batch into model
inputs and call any model; bundles (``raysurvey.models.bundle``) carry trained weights
with everything needed to use them. docs/models.md lists the models.
"""

from raysurvey.models import (  # noqa: F401
    audio_cnn,
    drcnet,
    epsanet,
    fusion,
    image_cnn,
    macnet,
    rcnet,
    spec_cnn,
    vit,
)
from raysurvey.models._registry import config_dict, create_model, list_models, register_model
from raysurvey.models.attention import ATTENTIONS, get_attention
from raysurvey.models.inputs import (
    MissingModalityError,
    example_inputs,
    prepare_inference,
    prepare_inputs,
    run_model,
)

__all__ = [
    "ATTENTIONS",
    "MissingModalityError",
    "config_dict",
    "create_model",
    "example_inputs",
    "get_attention",
    "list_models",
    "prepare_inference",
    "prepare_inputs",
    "register_model",
    "run_model",
]
