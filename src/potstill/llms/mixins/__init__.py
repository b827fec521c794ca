"""Mixins that LLM classes combine with `LLM`: GPU placement for local models, and Magpie's
pre-query templates."""

from potstill.llms.mixins.cuda_device_placement import CudaDevicePlacementMixin
from potstill.llms.mixins.magpie import MagpieChatTemplateMixin

__all__ = ["CudaDevicePlacementMixin", "MagpieChatTemplateMixin"]
