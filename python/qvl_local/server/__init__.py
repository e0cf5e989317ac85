"""`qvl-local serve`: an OpenAI-compatible HTTP API over one loaded model (FastAPI + uvicorn).

Endpoints: `POST /v1/chat/completions` (text, `image_url` and `video_url` parts, streaming with
server-sent events), `GET /v1/models`, `GET /v1/models/{id}` and `GET /health`.

The model is not thread-safe, so one worker thread runs the generations one at a time, in arrival
order; at most `max_queue` requests are admitted at once (the running one included) and the others
get 503. The model keeps its KV cache between requests, so a conversation that continues reuses the
cached prefix. Request checking, media downloads and token counting happen before a request waits
for the model (and off the event loop), so a bad request fails at once and costs the model nothing.

Modules: `app` (routes, access, the request's path), `chat_request` (body, JSON and field checks),
`media` (images and videos of a request, within the limits), `worker` (the model's thread and its
jobs), `replies` (whole and streamed answers), `settings` and `errors`.
"""
from .app import DEFAULT_HOST, DEFAULT_PORT, check_bind_host, create_app, default_model_id, is_loopback, serve
from .errors import APIError
from .settings import ServerSettings

__all__ = ["APIError", "DEFAULT_HOST", "DEFAULT_PORT", "ServerSettings", "check_bind_host", "create_app",
           "default_model_id", "is_loopback", "serve"]
