"""The sampler interface: pick frames of a video, record how."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Union

from ...schema import SampledFrames
from ..reader import Frame, Output, ProgressFn, Size, VideoReader

#: A sampler accepts a path or an already open reader (which it leaves open).
Source = Union[str, "os.PathLike[str]", VideoReader]


@contextmanager
def open_source(source: Source) -> Iterator[VideoReader]:
    if isinstance(source, VideoReader):
        yield source
        return
    with VideoReader(source) as reader:
        yield reader


class Sampler(ABC):
    """Chooses frame indices of a video. Subclasses set ``name`` and implement :meth:`choose`;
    ``params`` is recorded in every output so a run can be reproduced."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that determine the choice, JSON-serialisable."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The string :func:`~videoespresso.video.samplers.parse_sampler` turns back into this."""

    @abstractmethod
    def choose(self, reader: VideoReader) -> list[int]:
        """Sorted frame indices (repeats allowed where the rule produces them)."""

    def sample(self, source: Source) -> SampledFrames:
        """The chosen frames as references (index + seconds), without decoding pictures."""
        with open_source(source) as reader:
            indices = self.choose(reader)
            return self._record(reader, indices)

    def sample_with_frames(
        self,
        reader: VideoReader,
        *,
        size: Size = None,
        output: Output = "pil",
        progress: ProgressFn | None = None,
    ) -> tuple[SampledFrames, list[Frame]]:
        """Choose and decode. Samplers that look at pixels to choose override this to do both in
        one decoding pass."""
        indices = self.choose(reader)
        frames = reader.get_frames_at(indices, size=size, output=output, progress=progress)
        return self._record(reader, indices), frames

    def _record(self, reader: VideoReader, indices: list[int], extra: dict[str, Any] | None = None) -> SampledFrames:
        params = dict(self.params)
        if extra:
            params.update(extra)
        return SampledFrames(video=str(reader.path), sampler=self.name, params=params, frames=reader.refs(indices))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"
