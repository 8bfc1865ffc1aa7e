"""The predictor: numpy images and text prompts in, foreground probabilities out.

It owns the device, the numeric precision, image pre-processing and a per-prompt cache of text
features; the network it wraps only sees normalised tensors.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from numbers import Integral
from typing import Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geosam.errors import InputError
from geosam.model.base import PromptSegmenter, TextFeatures
from geosam.model.text import normalize_prompts, tokenize
from geosam.tasks.mixin import TaskMixin

Precision = Literal["fp32", "bf16", "fp16", "auto"]
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Prompts that name a direction change meaning in a mirrored image; test-time mirroring skips them.
_DIRECTION = re.compile(
    r"\b(left|right|top|bottom|upper|lower|north|south|east|west|above|below|leftmost|rightmost|"
    r"topmost|bottommost|uppermost|lowermost|northern|southern|eastern|western)\b",
    re.IGNORECASE,
)


def names_a_direction(prompt: str) -> bool:
    """Whether ``prompt`` names a direction ("the plane in the top left"), which a mirrored image
    would contradict.

    >>> names_a_direction("the ship on the left"), names_a_direction("ships")
    (True, False)
    """
    return _DIRECTION.search(prompt) is not None


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else must name a device this machine has.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    # torch only fails on the first tensor moved there, with an assertion about its build
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            have = f"{count} CUDA GPU(s), numbered from 0" if count else "no usable CUDA GPU"
            raise InputError(
                f"device {str(device)!r}: this machine has {have} (torch {torch.__version__}); "
                "use device='cpu' or 'auto'"
            )
    if resolved.type == "mps" and not _mps_available():
        raise InputError(f"device {str(device)!r}: MPS is not available here; use 'cpu' or 'auto'")
    return resolved


def check_batch_size(batch_size: int | None) -> int | None:
    """``batch_size`` if it is ``None`` or a positive integer, else an :class:`InputError`."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1
    ):
        raise InputError(f"batch_size must be a positive integer (or None), got {batch_size!r}")
    return None if batch_size is None else int(batch_size)


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """``scales`` as a tuple of distinct window scales in (0, 4], else an :class:`InputError`.

    >>> check_scales([0.75, 1, 1.25])
    (0.75, 1.0, 1.25)
    """
    try:
        values = tuple(float(s) for s in scales)
        ok = bool(values) and all(0 < v <= 4 for v in values) and len(set(values)) == len(values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(
            "scales must be distinct positive window scales up to 4, such as (0.75, 1, 1.25); "
            f"got {scales!r}"
        )
    return values


def scaled_size(size: int, scale: float) -> int:
    """The network input for a window of ``size`` pixels seen at ``scale``: a multiple of 32 (the
    network's coarsest stride), at least 64.

    >>> scaled_size(512, 0.75), scaled_size(512, 1.25), scaled_size(128, 0.3)
    (384, 640, 64)
    """
    return max(64, round(size * scale / 32) * 32)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` is bf16 on GPUs that support it (fp16 on others) and exact fp32 on CPU."""
    if precision not in ("fp32", "bf16", "fp16", "auto"):
        raise InputError(f"precision must be one of fp32, bf16, fp16, auto; got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def check_images(images: np.ndarray, *, batched: bool) -> np.ndarray:
    """Validate an ``H x W x 3`` (or ``B x H x W x 3``) uint8 RGB array, naming what is wrong."""
    name = "images" if batched else "image"
    expected = "B x H x W x 3" if batched else "H x W x 3"
    if not isinstance(images, np.ndarray):
        raise InputError(
            f"{name} must be a numpy array ({expected} uint8 RGB), got {type(images).__name__}"
        )
    ndim = 4 if batched else 3
    if images.ndim != ndim:
        raise InputError(f"{name} must have shape {expected}, got shape {images.shape}")
    bands = images.shape[-1]
    if bands != 3:
        if images.shape[-3] == 3:
            hint = " It looks channels-first: use np.moveaxis(image, -3, -1)."
        elif bands == 4:
            hint = " Select the RGB bands first, e.g. image[..., :3] for RGBN."
        elif bands == 1:
            hint = " A single band is not RGB: repeat it (np.repeat(image, 3, -1)) if that is what you mean."
        else:
            hint = ""
        raise InputError(
            f"{name} must have 3 bands (RGB) in the last axis, got {bands} (shape {images.shape}).{hint}"
        )
    if images.dtype != np.uint8:
        raise InputError(
            f"{name} must be uint8 RGB (0-255), got dtype {images.dtype}; scale reflectance or "
            "float data to 0-255 first (geosam.imagery.to_rgb8 does this for scenes)"
        )
    if images.shape[-2] < 1 or images.shape[-3] < 1:
        raise InputError(f"{name} is empty: shape {images.shape}")
    return images


class RemoteSAM(TaskMixin):
    """Text-prompted segmentation with a loaded network.

    Build it with :func:`geosam.load_model`.

    >>> model = geosam.load_model()                       # doctest: +SKIP
    >>> prob = model.predict(image, "ships")              # H x W float32 in [0, 1]  # doctest: +SKIP
    >>> probs = model.predict(image, ["ships", "harbor"])  # P x H x W  # doctest: +SKIP

    ``tta=True`` averages each probability map with those of the image mirrored left-right and
    top-bottom (three forward passes; prompts that name a direction are predicted once).
    ``scales=(0.75, 1, 1.25)`` averages the maps of the image seen smaller and larger (each scale
    ``s`` costs ``s**2`` of a pass, and mirroring multiplies them by three): objects whose size in
    pixels the network reads best differs between sensors and classes are found at one of the
    scales. The gains of both on the packaged weights are measured in docs/model-card.md.

    A prompt that asks for a whole group class of the vocabulary ("vehicles", "all the sports
    fields") is answered as the union (pixel-wise maximum) of its members' prompts ("cars", "large
    vehicles"): one forward pass per member (:func:`geosam.data.vocabulary.group_prompts`,
    docs/decisions/0003-group-classes.md). ``unite_groups=False`` asks the network for the group's
    own name instead.
    """

    def __init__(
        self,
        network: PromptSegmenter,
        *,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        batch_size: int | None = None,
        name: str | None = None,
        tta: bool = False,
        scales: Sequence[float] = (1.0,),
        unite_groups: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.name = name or network.arch
        # One pair per pass on CPU: two windows' widest activation outgrows glibc's mmap ceiling and
        # is faulted in afresh on every pass (docs/decisions/0007-cpu-inference-form.md).
        self.batch_size = check_batch_size(batch_size) or (8 if self.device.type == "cuda" else 1)
        self.tta = tta
        self.scales = check_scales(scales)
        if self.scales != (1.0,) and not network.resizable:
            raise InputError(f"{network.arch} has a fixed input size; it cannot be run at other scales")
        self.unite_groups = unite_groups
        network.eval()
        network.prepare_for_inference()
        self.network = network.to(self.device)
        self._text_cache: dict[str, TextFeatures] = {}

    def __repr__(self) -> str:
        options = (", tta=True" if self.tta else "") + (
            f", scales={self.scales}" if self.scales != (1.0,) else "") + (
            "" if self.unite_groups else ", unite_groups=False")
        return (f"RemoteSAM(name={self.name!r}, input_size={self.input_size}, device='{self.device}', "
                f"precision={self.precision!r}{options})")

    @property
    def input_size(self) -> int:
        """The network's square input size in pixels (e.g. 896 for remotesam-v1)."""
        return self.network.input_size

    # -- text -------------------------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> TextFeatures:
        """Text features of ``prompts``, each encoded once and cached on the device."""
        new = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        if new:
            ids, mask = tokenize(new, self.network.max_tokens)
            with torch.inference_mode(), self._autocast():
                enc = self.network.encode_text(ids.to(self.device), mask.to(self.device))
            for i, p in enumerate(new):
                self._text_cache[p] = enc.select(slice(i, i + 1))
        rows = [self._text_cache[p] for p in prompts]
        return TextFeatures(
            torch.cat([r.features for r in rows]), torch.cat([r.mask for r in rows])
        )

    # -- images -----------------------------------------------------------------------------------
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """``B x H x W x 3`` uint8 -> normalised ``B x 3 x S x S`` float tensor on the device."""
        size = self.input_size
        if images.shape[1:3] != (size, size):
            # Aspect is not kept, as in the official code, which resizes the 8-bit image with
            # PIL's bilinear filter; doing the same gives the same pixels.
            images = np.stack(
                [
                    np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
                    for im in images
                ]
            )
        # torch cannot wrap read-only arrays (e.g. PIL-backed); a uint8 copy is cheap.
        arr = np.ascontiguousarray(images)
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.network.pixel_mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.network.pixel_std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @overload
    def predict(self, image: np.ndarray, prompts: str) -> np.ndarray: ...
    @overload
    def predict(self, image: np.ndarray, prompts: Sequence[str]) -> np.ndarray: ...

    def predict(self, image: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray:
        """Foreground probability of each prompt: ``H x W`` for a string, ``P x H x W`` for a list.

        >>> model.predict(np.zeros((300, 400, 3), np.uint8), "ships").shape  # doctest: +SKIP
        (300, 400)
        """
        check_images(image, batched=False)
        items, single = normalize_prompts(prompts)
        out = self.predict_batch(image[None], items)[0]
        return out[0] if single else out

    def predict_batch(self, images: np.ndarray, prompts: str | Sequence[str]) -> np.ndarray:
        """Probabilities ``B x P x H x W`` for every image-prompt pair, batched on the device.

        Every prompt is a full forward pass (text is fused into every stage of the network), so the
        ``B * P`` pairs are run ``batch_size`` at a time.
        """
        check_images(images, batched=True)
        items, _ = normalize_prompts(prompts)
        b, h, w = images.shape[:3]
        pixels = self.preprocess(images)
        out = np.empty((b, len(items), h, w), dtype=np.float32)
        for img_idx, prompt_idx, probs in self.pair_probabilities(pixels, items):
            if probs.shape[-2:] != (h, w):
                probs = self.resize_back(probs, (h, w))
            out[img_idx, prompt_idx] = probs.clamp_(0, 1).cpu().numpy()
        return out

    def resize_back(self, probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Probabilities ``(N, S, S)`` at the network's output size resized to ``size`` the way the
        network's reference code does (``network.output_resize``: bilinear, or nearest for v1)."""
        mode = self.network.output_resize
        extra = {"align_corners": False} if mode == "bilinear" else {}
        return F.interpolate(probs[:, None], size=size, mode=mode, **extra)[:, 0]

    def predict_logits(self, pixels: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        """Raw network logits ``(B, 2, S, S)`` for preprocessed pixels and one prompt per image."""
        with torch.inference_mode(), self._autocast():
            return self.network.segment(pixels, text)

    def pair_probabilities(
        self, pixels: torch.Tensor, prompts: Sequence[str], *, batch_size: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(image index, prompt index, S x S probabilities)`` of every pair of preprocessed
        ``pixels`` and ``prompts``, ``batch_size`` pairs per forward pass (with ``tta``, averaged
        with the mirrored views unless the prompt names a direction; group prompts as the union
        of their members', see the class docstring).

        >>> for i, p, probs in model.pair_probabilities(model.preprocess(images), ["ships"]): ...  # doctest: +SKIP
        """
        from geosam.data.vocabulary import group_prompts

        members = [group_prompts(p) if self.unite_groups else () for p in prompts]
        if not any(members):
            yield from self._network_pairs(pixels, prompts, batch_size)
            return
        # each distinct query (member or plain prompt) once, by its position among the queries
        queries = {q: i for i, q in enumerate(dict.fromkeys(
            q for p, m in zip(prompts, members, strict=True) for q in m or (p,)))}
        found: dict[tuple[int, int], torch.Tensor] = {}
        for img_idx, query_idx, probs in self._network_pairs(pixels, list(queries), batch_size):
            for w, q, prob in zip(img_idx.tolist(), query_idx.tolist(), probs, strict=True):
                found[w, q] = prob
        images = torch.arange(pixels.shape[0])
        for p, (prompt, group) in enumerate(zip(prompts, members, strict=True)):
            rows = [queries[q] for q in group or (prompt,)]
            union = [torch.stack([found[w, q] for q in rows]).amax(dim=0) for w in images.tolist()]
            yield images, torch.full_like(images, p), torch.stack(union)

    def _network_pairs(
        self, pixels: torch.Tensor, prompts: Sequence[str], batch_size: int | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        text = self.encode_prompts(prompts)
        mirror = torch.tensor([self.tta and not names_a_direction(p) for p in prompts])
        batch = check_batch_size(batch_size) or self.batch_size
        b, p = pixels.shape[0], len(prompts)
        img_idx = torch.arange(b).repeat_interleave(p)
        prompt_idx = torch.arange(p).repeat(b)
        for start in range(0, b * p, batch):
            sl = slice(start, start + batch)
            x, t = pixels[img_idx[sl].to(self.device)], text.select(prompt_idx[sl].to(self.device))
            rows = mirror[prompt_idx[sl]].nonzero()[:, 0].to(self.device)
            views = [self._view_probabilities(x, t, rows, scale) for scale in self.scales]
            yield img_idx[sl], prompt_idx[sl], views[0] if len(views) == 1 else torch.stack(views).mean(dim=0)

    def _view_probabilities(
        self, x: torch.Tensor, t: TextFeatures, mirrored: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """``(B, S, S)`` probabilities of preprocessed ``x`` seen at ``scale``, averaged with the
        mirrored views for the ``mirrored`` rows."""
        size = x.shape[-1]
        if scale != 1:
            side = scaled_size(size, scale)
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < size)
        probs = torch.softmax(self.predict_logits(x, t).float(), dim=1)[:, 1]
        if len(mirrored):
            xm, tm = x[mirrored], t.select(mirrored)
            total = probs[mirrored]
            for dims in ((-1,), (-2,)):  # left-right, top-bottom
                flipped = self.predict_logits(xm.flip(dims), tm).float()
                total = total + torch.softmax(flipped, dim=1)[:, 1].flip(dims)
            probs[mirrored] = total / 3
        return probs if probs.shape[-1] == size else self.resize_back(probs, (size, size))

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)
