"""Sources: where images and video frames come from (folders, globs, datasets, video, sequences)."""

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

__all__ = [
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
