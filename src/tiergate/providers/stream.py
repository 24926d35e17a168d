"""The read loop every adapter's streamed answer shares.

An adapter's stream class says only how one network read (`feed`) and the end of the body
(`finish`) become canonical chunks; `UpstreamStream` reads the body, forwards the chunks of each
read together (never buffering the whole answer), raises what the upstream reported after the
chunks that came before it, ends cleanly only when the adapter says the answer was complete, and
releases the connection however the stream ends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import AsyncGenerator, AsyncIterator, ClassVar

import aiohttp

from ..errors import UpstreamError, UpstreamProtocolError
from ..types import StreamEvent
from .base import translate_exception

Step = tuple[list[StreamEvent], bool, UpstreamError | None]
"""What one read made: (chunks, whether the answer is complete, an error that came after them)."""


class UpstreamStream(ABC):
    """A `ChatStream` over an open upstream response; subclasses implement `feed` and `finish`."""

    end_marker: ClassVar[str]  # what a complete answer ends with, for the "ended early" error

    def __init__(self, resp: aiohttp.ClientResponse, deployment: str) -> None:
        self._resp = resp
        self._deployment = deployment
        self._gen = self._batches()  # one iterator: the first batch may be read before the rest

    def __aiter__(self) -> AsyncIterator[list[StreamEvent]]:
        return self._gen

    async def aclose(self) -> None:
        await self._gen.aclose()
        self._resp.close()

    @abstractmethod
    def feed(self, chunk: bytes) -> Step:
        """The chunks one network read completed; complete = stop reading, a clean end."""

    @abstractmethod
    def finish(self) -> Step:
        """At end of body: the last chunks, and whether the answer was complete (if not, and no
        error is given, the stream raises `incomplete()`)."""

    def incomplete(self) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"upstream stream ended before the answer was complete (no {self.end_marker})",
            deployment=self._deployment,
        )

    async def _batches(self) -> AsyncGenerator[list[StreamEvent], None]:
        reads = self._resp.content.iter_any()
        try:
            while True:
                chunk = await anext(reads, None)
                batch, done, error = self.feed(chunk) if chunk is not None else self.finish()
                if batch:
                    yield batch  # what came before an error still reaches the client
                if error is not None:
                    raise error
                if done:
                    return
                if chunk is None:
                    raise self.incomplete()
        except UpstreamError:
            raise
        except Exception as exc:
            raise translate_exception(exc, self._deployment) from exc
        finally:
            self._resp.release()
