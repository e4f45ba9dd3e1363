"""Sources: where images and video frames come from (folders, globs, datasets, video, sequences)."""

import inspect as _inspect

from autolabel.io.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ImageReadError, load_image, load_image_draft
from autolabel.sources.inputs import (
    Item,
    NoImagesError,
    Source,
    from_coco,
    from_folder,
    from_glob,
    from_paths,
    from_video,
    from_voc,
    from_yolo,
    open_source,
)

from autolabel.sources import sequences as _sequences


def _option_names(*functions: object) -> frozenset[str]:
    return frozenset(name for f in functions for name, p in list(_inspect.signature(f).parameters.items())[1:]  # type: ignore[arg-type]
                     if p.kind is not p.VAR_KEYWORD)


#: the keyword options :func:`open_source` passes on to some kind of source (``every``, ``split``, ``fps``, ...)
SOURCE_OPTIONS = _option_names(from_folder, from_glob, from_paths, from_coco, from_yolo, from_voc, from_video,
                               _sequences.from_frames, _sequences.from_mot_folder, _sequences.open_sequence)

__all__ = [
    "SOURCE_OPTIONS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ImageReadError",
    "Item",
    "NoImagesError",
    "Source",
    "load_image",
    "load_image_draft",
    "open_source",
    "from_folder",
    "from_glob",
    "from_paths",
    "from_coco",
    "from_yolo",
    "from_voc",
    "from_video",
]
