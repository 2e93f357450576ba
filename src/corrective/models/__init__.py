"""Models: a registry with one factory, `create_model`."""

from corrective.models import cnn, resnet9, vit, wrn  # noqa: F401  (registers)
from corrective.models.registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
