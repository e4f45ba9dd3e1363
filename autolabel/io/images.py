"""Image files: finding them, and decoding them under one EXIF rule.

**EXIF orientation rule** (applied everywhere, by :func:`load_image`): pixels are rotated
as the EXIF ``Orientation`` tag says, exactly as annotation tools (Label Studio, CVAT,
browsers) display the image. Widths, heights and boxes in every output refer to that
displayed image.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

Size = tuple[int, int]  # (width, height)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class ImageReadError(Exception):
    """An input image that cannot be decoded; ``str()`` names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def open_pil(path: str | os.PathLike):
    """Open an image with PIL's own ``Image.open``: Ultralytics replaces it on import with a
    wrapper that tries to pip-install a HEIF plugin whenever a file is not an image."""
    from PIL import Image

    opener = Image.open
    if opener.__module__ != Image.__name__:
        opener = getattr(sys.modules.get(opener.__module__), "_image_open", opener)
    return opener(path)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to RGB ``uint8`` (H, W, 3) with EXIF orientation applied.

    Raises :class:`ImageReadError` for missing, unreadable, empty, truncated or
    non-image files.
    """
    return load_image_draft(path)[0]


#: JPEG draft decoding starts when the image is at least this many times the wanted size
DRAFT_FACTOR = 2.0


def load_image_draft(
    path: str | os.PathLike, size: tuple[int, int] | None = None, max_pixels: int | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image, JPEGs cheaply in the DCT domain when they are much larger than needed.

    With ``size`` = (height, width) of a model input and a JPEG at least
    :data:`DRAFT_FACTOR` times larger than the letterbox needs, the decoder scales by
    1/2, 1/4 or 1/8 while decoding (Pillow's ``Image.draft``), never below what the
    letterbox resize to ``size`` keeps, so that resize still only shrinks.

    With ``max_pixels``, an image with more pixels is refused from its header, before
    anything is decoded, unless it is a JPEG that a 1/2, 1/4 or 1/8 draft decode brings
    within the limit (it is then decoded that small: a downscaled image).

    Args:
        path: the image file.
        size: model input (height, width); ``None``: full decode.
        max_pixels: the most pixels one decode may produce (``None``: Pillow's bomb limit only).

    Returns:
        RGB ``uint8`` (h, w, 3) pixels (EXIF orientation applied) and the image's full
        (width, height) after orientation, which the pixels may be smaller than.

    Raises:
        ImageReadError: missing, unreadable, empty, truncated or non-image files.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = str(path)
    try:
        if os.path.getsize(p) == 0:
            raise ImageReadError(p, "empty file (0 bytes)")
        with open_pil(p) as im:
            stored = im.size
            if max_pixels and stored[0] * stored[1] > max_pixels and im.format != "JPEG":
                _too_many(p, stored, max_pixels)  # before getexif: Pillow decodes a whole PNG to find its EXIF
            swap = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
            full = (stored[1], stored[0]) if swap else stored
            r = _draft_scale(stored, full, size, max_pixels) if im.format == "JPEG" else 1.0
            if r < 1:
                im.draft("RGB", (int(np.ceil(stored[0] * r)), int(np.ceil(stored[1] * r))))
            if max_pixels and im.size[0] * im.size[1] > max_pixels:
                _too_many(p, stored, max_pixels)
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(im.convert("RGB"))
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(p, "file not found") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory") from None
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated data, decoder errors
        raise ImageReadError(p, f"cannot decode: {e}") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(p, f"refused by decoder: {e}") from None
    return arr, full


def _draft_scale(stored: Size, full: Size, size: tuple[int, int] | None, max_pixels: int | None) -> float:
    """The scale a JPEG may decode at: the letterbox's (to ``size``) when it keeps at most
    1/DRAFT_FACTOR of a side, and at most the 1/2, 1/4 or 1/8 that fits ``max_pixels``
    (Pillow's draft never decodes below the size asked for)."""
    r = 1.0
    if size is not None and min(size[1] / full[0], size[0] / full[1]) * DRAFT_FACTOR <= 1:
        r = min(size[1] / full[0], size[0] / full[1])
    if max_pixels and stored[0] * stored[1] * r * r > max_pixels:
        k = next((k for k in (2, 4, 8) if stored[0] * stored[1] / k**2 <= max_pixels), 8)
        r = min(r, 1 / k)
    return r


def _too_many(path: str, size: tuple[int, int], max_pixels: int) -> None:
    raise ImageReadError(path, f"{size[0]}x{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} MP) are more than the "
                               f"limit of {max_pixels / 1e6:g} MP per image; not decoded")


def find_images(root: str, recursive: bool = True, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under ``root`` (by extension, case-insensitive), sorted, folders first-walked in order."""
    exts = tuple(e.lower() for e in extensions)
    found: list[str] = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(exts)]
        if not recursive:
            break
    return found


def image_size(path: str) -> Size:
    """Displayed ``(width, height)`` from the file header: EXIF orientations 5-8 swap them
    (see the EXIF rule in :mod:`autolabel.sources`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_pil(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot read the image size: {e}") from e
    return (h, w) if turned else (w, h)
