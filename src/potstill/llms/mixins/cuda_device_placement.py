"""`CudaDevicePlacementMixin`: which GPUs a local model (`TransformersLLM`, `vLLM`) uses.

distilabel 1.1 ran every step in a process of its own, so its mixin could write the chosen
devices into `CUDA_VISIBLE_DEVICES` of that process. potstill runs every step in one process,
where one environment variable cannot give two models different GPUs (and CUDA reads it only
once). So the mixin only *decides*: it keeps a per-process registry of which LLM holds which
device, hands out free ones for `cuda_devices="auto"`, checks explicit lists, and each LLM
passes the result to its model (`TransformersLLM`: the `device`/`device_map` of the model;
`vLLM`: `CUDA_VISIBLE_DEVICES`, set only while its engine starts).

```python
from potstill.llms import TransformersLLM

first = TransformersLLM(model="HuggingFaceTB/SmolLM2-135M-Instruct")  # GPU 0
second = TransformersLLM(model="HuggingFaceTB/SmolLM2-135M-Instruct")  # GPU 1
pinned = TransformersLLM(model="...", cuda_devices=[1])  # shares GPU 1, with a warning
```
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any, List, Literal, Optional, Union

from pydantic import BaseModel, Field, PrivateAttr

from potstill.errors import PotstillUserError

__all__ = ["CudaDevicePlacementMixin", "CudaDevices", "cuda_device_count"]

CudaDevices = Union[List[int], Literal["auto"]]
"""A list of CUDA device indices, or `"auto"` (free devices, chosen at load time)."""

_logger = logging.getLogger("potstill.llms.cuda")

# The default registry: LLM identifier -> (what it is, for messages; devices it holds).
_PLACEMENTS: dict[str, tuple[str, list[int]]] = {}
_PLACEMENTS_LOCK = threading.Lock()


def cuda_device_count() -> int:
    """How many CUDA devices this process sees (after `CUDA_VISIBLE_DEVICES`); 0 without
    CUDA or without `torch`."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver counts as no GPU
        return 0


class CudaDevicePlacementMixin(BaseModel):
    """Assigns CUDA devices to a local LLM, so that the local LLMs of a pipeline (of a
    process) spread over the GPUs instead of piling onto the first one.

    `load()` takes the devices: with `"auto"`, the first free ones (not held by another
    LLM of this process); with a list, exactly those (a warning when another LLM holds one
    of them too). `unload()` gives them back. Without CUDA, `"auto"` assigns nothing (the
    model runs where its class puts it, e.g. the CPU).

    Attributes:
        cuda_devices: the CUDA devices the model may use: a list of indices (as this process
            sees them, i.e. after `CUDA_VISIBLE_DEVICES`), or `"auto"`.
    """

    cuda_devices: CudaDevices = Field(
        default="auto",
        description="The CUDA devices the model may use: a list of indices, or 'auto' (free "
        "devices not used by another LLM of this process).",
    )

    _llm_identifier: Optional[str] = PrivateAttr(default=None)
    _device_llm_placement_map: Optional[dict[str, Any]] = PrivateAttr(default=None)
    _device_llm_placement_lock: Any = PrivateAttr(default=None)
    _assigned_cuda_devices: list[int] = PrivateAttr(default_factory=list)
    _placement_finalizer: Any = PrivateAttr(default=None)

    @property
    def _desired_num_gpus(self) -> int:
        """How many devices the model needs (vLLM: its tensor and pipeline parallel sizes)."""
        return 1

    @property
    def assigned_cuda_devices(self) -> list[int]:
        """The devices `load()` assigned (empty before, or without CUDA)."""
        return list(self._assigned_cuda_devices)

    def set_device_placement_info(
        self,
        llm_identifier: str,
        device_llm_placement_map: dict[str, Any],
        device_llm_placement_lock: Any,
    ) -> None:
        """Makes this LLM share a placement registry other than the process-wide one.

        Args:
            llm_identifier: names this LLM in the registry (distilabel used the step name).
            device_llm_placement_map: the registry: identifier -> devices it holds.
            device_llm_placement_lock: a lock guarding the registry.
        """
        self._llm_identifier = llm_identifier
        self._device_llm_placement_map = device_llm_placement_map
        self._device_llm_placement_lock = device_llm_placement_lock

    def load(self) -> None:
        """Assigns the CUDA devices (see the class docstring). An LLM class that mixes this
        in calls it from its own `load` and passes `assigned_cuda_devices` to its model."""
        self._assign_cuda_devices()

    def unload(self) -> None:
        """Gives the assigned devices back to the registry."""
        self._release_cuda_devices()

    # -- assignment ------------------------------------------------------------------------

    def _assign_cuda_devices(self) -> list[int]:
        self._release_cuda_devices()
        registry, lock = self._registry()
        me = self._identifier()
        with lock:
            held = {
                device: label
                for key, (label, devices) in _entries(registry)
                if key != me
                for device in devices
            }
            devices = self._choose_devices(cuda_device_count(), held)
            registry[me] = (self._placement_label(), devices)
        self._assigned_cuda_devices = devices
        if self._placement_finalizer is None:
            # An LLM dropped without `unload()` must not hold its devices forever.
            self._placement_finalizer = weakref.finalize(self, _forget, registry, lock, me)
        if devices:
            _logger.info("%s uses CUDA device(s) %s.", self._placement_label(), devices)
        return list(devices)

    def _choose_devices(self, count: int, held: dict[int, str]) -> list[int]:
        wanted = self._desired_num_gpus
        label = self._placement_label()
        if self.cuda_devices == "auto":
            if count == 0:
                return []
            free = [device for device in range(count) if device not in held]
            if len(free) < wanted:
                taken = ", ".join(f"{device}: {who}" for device, who in sorted(held.items()))
                raise RuntimeError(
                    f"Couldn't find {wanted} free CUDA device(s) for {label}: this process "
                    f"sees {count}, and other LLMs hold {{{taken}}}. Give `cuda_devices=[...]` "
                    "explicitly to share a device, or unload another LLM first."
                )
            return free[:wanted]
        devices = list(self.cuda_devices)
        if count == 0:
            raise PotstillUserError(
                f"{label}: `cuda_devices={devices}` but no CUDA device is available. Remove "
                "`cuda_devices` (or use 'auto') to run without a GPU."
            )
        invalid = [device for device in devices if not 0 <= device < count]
        if invalid or len(set(devices)) != len(devices):
            raise PotstillUserError(
                f"{label}: invalid `cuda_devices={devices}`: this process sees {count} CUDA "
                f"device(s), indices 0 to {count - 1}, each listed once."
            )
        if len(devices) < wanted:
            raise PotstillUserError(
                f"{label}: `cuda_devices={devices}` lists {len(devices)} device(s) but the "
                f"model needs {wanted}. List {wanted} devices or use 'auto'."
            )
        shared = {device: held[device] for device in devices if device in held}
        if shared:
            _logger.warning(
                "%s uses CUDA device(s) %s, also used by %s.",
                label,
                sorted(shared),
                sorted(set(shared.values())),
            )
        return devices

    def _release_cuda_devices(self) -> None:
        if self._llm_identifier is None and not self._assigned_cuda_devices:
            return
        registry, lock = self._registry()
        with lock:
            registry.pop(self._identifier(), None)
        self._assigned_cuda_devices = []

    def _registry(self) -> tuple[dict[str, Any], Any]:
        if self._device_llm_placement_map is not None:
            return self._device_llm_placement_map, self._device_llm_placement_lock
        return _PLACEMENTS, _PLACEMENTS_LOCK

    def _identifier(self) -> str:
        if self._llm_identifier is None:
            self._llm_identifier = f"{type(self).__name__}-{id(self):x}"
        return self._llm_identifier

    def _placement_label(self) -> str:
        try:
            name = getattr(self, "model_name", None)
        except Exception:
            name = None
        return f"{type(self).__name__}({name!r})" if name else type(self).__name__

    # -- handing devices to a model --------------------------------------------------------

    def cuda_visible_devices_value(self) -> Optional[str]:
        """The assigned devices as a `CUDA_VISIBLE_DEVICES` value, translated through the
        current `CUDA_VISIBLE_DEVICES` (index 0 of `"2,3"` is device `2`); `None` when no
        device is assigned."""
        if not self._assigned_cuda_devices:
            return None
        current = os.environ.get("CUDA_VISIBLE_DEVICES")
        visible = [part.strip() for part in current.split(",")] if current else None
        return ",".join(
            visible[device] if visible and device < len(visible) else str(device)
            for device in self._assigned_cuda_devices
        )

    @contextlib.contextmanager
    def cuda_visible_devices_env(self) -> Iterator[None]:
        """Sets `CUDA_VISIBLE_DEVICES` to the assigned devices inside the block (for a model
        that starts its own CUDA processes, like vLLM), then restores it."""
        value = self.cuda_visible_devices_value()
        if value is None:
            yield
            return
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = value
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous


def _forget(registry: dict[str, Any], lock: Any, key: str) -> None:
    with lock:
        registry.pop(key, None)


def _entries(registry: dict[str, Any]) -> Iterator[tuple[str, tuple[str, list[int]]]]:
    """Registry entries as `(key, (label, devices))`; a shared map given through
    `set_device_placement_info` may hold plain device lists."""
    for key, value in list(registry.items()):
        if isinstance(value, tuple):
            yield key, value
        else:
            yield key, (key, list(value))
