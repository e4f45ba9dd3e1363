"""The identity of one image or video frame (:class:`ImageInfo`), carried by every :class:`~autolabel.core.Detections`."""

from __future__ import annotations

from dataclasses import dataclass

from autolabel.io.images import VIDEO_EXTENSIONS

__all__ = ["ImageInfo"]


@dataclass(frozen=True)
class ImageInfo:
    """Identity of one image or video frame.

    ``key`` is stable across runs: the path relative to the source root for files,
    ``"<video>#<frame index>"`` for video frames.
    """

    key: str
    width: int
    height: int
    path: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None

    @property
    def file_name(self) -> str:
        """Name used for this image in exported datasets (relative, ``/``-separated)."""
        if self.frame_index is None:
            return self.key
        stem = self.sequence_name.rsplit(".", 1)[0]
        return f"{stem}/frame_{self.frame_index:06d}.jpg"

    @property
    def sequence_name(self) -> str:
        """The sequence's name as keys and written files carry it: the key before ``#``
        (a video's file name, a MOTChallenge sequence's name); see :attr:`sequence`."""
        return self.key.split("#", 1)[0]

    @property
    def sequence(self) -> str:
        """The video or sequence this frame belongs to, the one grouping key of every stage.

        The video file's path for frames decoded from a video (so two ``clip.mp4`` in
        different folders never merge), else the key before ``#`` (numbered image files,
        frames read back from a dataset); an image that is not a frame is its own key.
        """
        if self.path and self.path.lower().endswith(VIDEO_EXTENSIONS):
            return self.path
        return self.sequence_name

    @property
    def frame(self) -> int:
        """The frame index (0-based) of a video frame.

        Raises:
            ValueError: this image is not a video frame (no ``frame_index``).
        """
        if self.frame_index is None:
            raise ValueError(f"image {self.key!r} is not a video frame (no frame_index)")
        return self.frame_index

