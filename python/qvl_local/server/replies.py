"""The answers: a whole chat completion, or a stream of server-sent event chunks, from a job's events."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from .errors import APIError
from .worker import Failed, Finished, GenerationJob, Started


@dataclass
class Reply:
    model_id: str
    prompt_tokens: int
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def completion(self, text: str, finished: Finished) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finished.finish_reason, "logprobs": None}],
            "usage": self.usage(finished.completion_tokens),
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                         "logprobs": None}]})

    def usage_chunk(self, completion_tokens: int) -> str:
        return self._event({"choices": [], "usage": self.usage(completion_tokens)})

    def _event(self, payload: dict[str, Any]) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model_id, **payload}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def first_event(job: GenerationJob) -> Started:
    event = await job.next_event()
    if isinstance(event, Failed):
        raise event.error
    if isinstance(event, Finished):  # cancelled while waiting: its client is gone, nobody reads this
        raise APIError(499, "the client closed the request", code="client_closed_request")
    return event


async def complete_reply(job: GenerationJob, reply: Reply) -> JSONResponse:
    await first_event(job)
    pieces = []
    while not isinstance(event := await job.next_event(), (Finished, Failed)):
        pieces.append(event.text)
    if isinstance(event, Failed):
        raise event.error
    return JSONResponse(reply.completion("".join(pieces), event))


async def stream_reply(job: GenerationJob, watcher: asyncio.Task, reply: Reply,
                        include_usage: bool) -> StreamingResponse:
    try:
        await first_event(job)  # errors found before any text still get their HTTP status
    except BaseException:
        watcher.cancel()
        raise

    async def events() -> AsyncIterator[str]:
        try:
            yield reply.chunk({"role": "assistant", "content": ""})
            while not isinstance(event := await job.next_event(), (Finished, Failed)):
                yield reply.chunk({"content": event.text})
            if isinstance(event, Failed):
                yield f"data: {json.dumps(event.error.body())}\n\n"
                return
            yield reply.chunk({}, event.finish_reason)
            if include_usage:
                yield reply.usage_chunk(event.completion_tokens)
            yield "data: [DONE]\n\n"
        finally:  # the stream ended, or the server stopped it because the client left
            job.cancel()
            watcher.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
