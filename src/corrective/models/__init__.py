"""Models: a registry with one factory, `create_model`; `ModelSpec`; devices."""

from corrective.models import cnn, resnet9, vit, wrn  # noqa: F401  (registers)
from corrective.models.device import device_of, resolve_device
from corrective.models.registry import MODELS, ModelSpec, create_model, list_models, register_model

__all__ = ["MODELS", "ModelSpec", "create_model", "device_of", "list_models", "register_model", "resolve_device"]
