"""One generation at a time: the model is not thread-safe, so a worker thread runs the requests' jobs in
arrival order and each job posts its events (started, text, finished or failed) to the event loop.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ..generation import GenerationConfig
from ..model import Model, PreparedPrompt
from .errors import APIError, api_error_from


@dataclass(frozen=True)
class PreparedChat:
    """A request ready for the model: its prompt prepared, its settings checked."""

    prompt: PreparedPrompt
    config: GenerationConfig


@dataclass(frozen=True)
class Started:
    """The prompt was accepted by the model; text follows."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # "stop", "length", or "cancelled" when its client left
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    error: APIError


class GenerationJob:
    """One request's generation: run on the worker thread, its events read on the event loop."""

    def __init__(self, model: Model, prepared: PreparedChat, loop: asyncio.AbstractEventLoop):
        self._model = model
        self._prepared = prepared
        self._loop = loop
        self._events: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop after the current token (or skip the job if it has not started)."""
        self._cancelled.set()

    async def next_event(self) -> Started | Text | Finished | Failed:
        return await self._events.get()

    def run(self) -> None:
        """On the worker thread. Always ends with a Finished or Failed event."""
        if self._cancelled.is_set():
            self._post(Finished("cancelled", 0))
            return
        try:
            self._post(self._generate())
        except Exception as error:  # the worker must outlive any one request
            self._post(Failed(api_error_from(error)))

    def _generate(self) -> Finished:
        prepared = self._prepared
        tokens = self._model.generate(prepared.prompt, config=prepared.config, stream=True)
        self._post(Started())
        completion_tokens = 0
        try:
            for text, token in tokens:
                completion_tokens += token >= 0  # -1 marks held-back text, not a new token
                if text:
                    self._post(Text(text))
                if self._cancelled.is_set():
                    return Finished("cancelled", completion_tokens)
        finally:
            tokens.close()
        return Finished(self._model.last_finish_reason, completion_tokens)

    def _post(self, event: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the event loop is closed: the server is shutting down
            pass


class ModelWorker:
    """Runs jobs one at a time on its own thread; admits at most `capacity` requests at once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._jobs: queue.SimpleQueue[GenerationJob | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._current: GenerationJob | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_jobs, name="qvl-model-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Cancel the running and waiting jobs, then end the thread."""
        with self._lock:
            self._stopping = True
            if self._current is not None:
                self._current.cancel()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join()

    def admit(self) -> bool:
        """Reserve a place for a request; False when `capacity` requests are already in."""
        with self._lock:
            if self._admitted >= self.capacity:
                return False
            self._admitted += 1
            return True

    def withdraw(self) -> None:
        """Give back a place reserved by admit() for a request that will not be enqueued."""
        with self._lock:
            self._admitted -= 1

    def enqueue(self, job: GenerationJob) -> None:
        self._jobs.put(job)

    def state(self) -> dict[str, int]:
        with self._lock:
            running = int(self._current is not None)
            return {"running": running, "waiting": self._admitted - running, "capacity": self.capacity}

    def _run_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._current = job
                if self._stopping:
                    job.cancel()
            try:
                job.run()
            finally:
                with self._lock:
                    self._current = None
                    self._admitted -= 1


async def cancel_on_disconnect(request: Request, job: GenerationJob) -> None:
    """Cancel `job` when its client goes away (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel()
