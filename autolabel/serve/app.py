"""The HTTP side: Label Studio's ML backend protocol on FastAPI.

Routes (what Label Studio 1.x calls, ``label_studio/ml/api_connector.py``):

- ``GET /health`` (and ``/``): ``{"status": "UP", "model_version"}``;
- ``POST /setup`` ``{project, schema, hostname, access_token, extra_params}``: checks
  the labeling config against the model, remembers the project's region names and
  answers ``{"model_version"}``; a config lacking the model's classes is HTTP 422 with
  ``{"error": ...}`` naming them (and the same line in the log);
- ``POST /predict`` ``{tasks, project, label_config, params}``: ``{"results": [one
  prediction per task]}``, each ``{result, score, model_version[, routing]}`` or
  ``{"error"}`` for a task that failed or was left for the next request;
- ``POST /webhook``: Label Studio's project events: ``START_TRAINING`` (what "Start
  training" sends, ``{"action", "project": {"id", ...}}``) starts a training, and
  ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED`` count towards ``--train-after``;
- ``POST /train`` (Label Studio's older "Start training": ``{"annotations", "project":
  "<id>.<created>", "label_config"}``): starts a training; the project's annotations are
  read back through the Label Studio client either way (:mod:`autolabel.serve.training`).
  Answers ``{"job", "status": "started", "model_version"}``; HTTP 409 ``{"error"}`` while a
  training runs; HTTP 501 when the backend was started without training;
- ``GET /train``: the training status (``state`` idle/running/done/failed/cancelled, the
  validation scores of both models, ``swapped``, ``model_version``); ``DELETE /train``
  kills a running training (the served model stays); ``GET /versions``.

Security: :func:`serve` binds 127.0.0.1 unless told otherwise; with ``basic_auth`` every
route requires those credentials (Label Studio's ML backend "Basic Auth" setting),
``/docs`` and ``/openapi.json`` included. The Label Studio token the backend reads images
with is never logged, request bodies (which carry it on ``/setup``) are never logged, and
query strings are redacted from every log line (:mod:`~autolabel.serve.redact`).

Limits (:class:`Limits`): a request body over ``max_body_bytes`` and a predict request of
more than ``max_tasks`` tasks are answered HTTP 413 with the reason. The time limit of a
predict request counts from its arrival, time queued behind other requests included; a
request whose time ran out while queued gets an ``error`` for every task (Label Studio
asks again) instead of a late answer.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from autolabel.serve.backend import Backend
from autolabel.serve.labelconfig import LabelConfigMismatch
from autolabel.serve.training import ServeTrainer, TrainingBusy

__all__ = ["create_app", "serve", "Limits", "DEFAULT_HOST", "DEFAULT_PORT"]

log = logging.getLogger("autolabel.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090


@dataclass(frozen=True)
class Limits:
    """What one request may ask: ``max_body_bytes`` of body (default 32 MiB: Label Studio
    sends task data, not images) and ``max_tasks`` tasks per predict request (default
    10,000; the time limit answers the rest with an error). Larger requests are answered
    HTTP 413 with the reason."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_tasks: int = 10_000

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0 or self.max_tasks <= 0:
            raise ValueError(f"limits must be > 0, got {self}")


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _BodyLimit:
    """ASGI middleware: stamps each request's arrival (``scope["state"]["arrived"]``,
    monotonic seconds) and reads its body up to ``limit`` bytes before the app sees it;
    a larger body (by ``Content-Length`` or as it streams) is answered 413."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope.setdefault("state", {})["arrived"] = time.monotonic()
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        body, more = bytearray(), int(declared) <= self.limit if declared.isdigit() else True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # disconnected: nothing to answer
            body += message.get("body", b"")
            more = message.get("more_body", False) and len(body) <= self.limit
        if len(body) > self.limit or (declared.isdigit() and int(declared) > self.limit):
            reason = f"the request body is larger than this backend's limit of {self.limit} bytes (--max-body-mb)"
            log.warning("refused a request: %s", reason)
            data = json.dumps({"error": reason}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
            return await send({"type": "http.response.body", "body": data})
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _refused(reason: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    log.warning("refused a request: %s", reason)
    return status, {"error": reason}


def _mismatch(backend: Backend, e: LabelConfigMismatch) -> tuple[int, dict[str, Any]]:
    log.error("labeling config does not fit model %s: %s", backend.model_version, e)
    return 422, {"error": str(e), "model_version": backend.model_version}


def _setup(backend: Backend, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Status and JSON answer of ``/setup``."""
    schema, token = body.get("schema"), body.get("access_token")
    if not isinstance(schema, (str, type(None))) or not isinstance(token, (str, type(None))):
        return _refused("'schema' must be the labeling config's XML text and 'access_token' a string", 422)
    try:
        return 200, backend.setup(str(body.get("project", "")), schema or "", body.get("hostname"), token)
    except LabelConfigMismatch as e:
        return _mismatch(backend, e)


def _predict(backend: Backend, limits: Limits, body: dict[str, Any], arrived: float) -> tuple[int, dict[str, Any]]:
    """Status and JSON answer of ``/predict``: the request checked against the limits, then
    the tasks predicted once the lock is free, within the time left since ``arrived``."""
    tasks, config = body.get("tasks"), body.get("label_config")
    if not isinstance(tasks, list):
        return _refused("the request has no 'tasks' list")
    if len(tasks) > limits.max_tasks:
        return _refused(f"{len(tasks)} tasks in one request; this backend takes at most {limits.max_tasks} "
                        "(--max-tasks): select fewer tasks", 413)
    if not isinstance(config, (str, type(None))):
        return _refused(f"'label_config' must be the labeling config's XML text, got {type(config).__name__}", 422)
    try:
        names = backend.names_for(config, body.get("project"))
        # the time limit counts from arrival: a request that waited it out runs nothing (Label Studio asks again)
        got = backend.lock.acquire(timeout=max(0.0, backend.time_limit - (time.monotonic() - arrived)))
        try:
            results = backend.predict(tasks, names=names, started=arrived)
        finally:
            if got:
                backend.lock.release()
    except LabelConfigMismatch as e:
        return _mismatch(backend, e)
    return 200, {"results": results, "model_version": backend.model_version}


def _training_routes(app: Any, backend: Backend, trainer: ServeTrainer | None) -> None:
    """``/webhook`` and ``/train`` (start, status, cancel) on ``app``."""
    from fastapi import Body
    from fastapi.responses import JSONResponse

    def start(project: Any) -> Any:
        if trainer is None:
            log.warning("Label Studio asked to train: this backend was started without training (--train-dir)")
            return JSONResponse({"error": "training is off: start autolabel serve with --train-dir"}, status_code=501)
        try:
            pid = int(str(project.get("id") if isinstance(project, dict) else project).split(".")[0])
        except ValueError:
            return JSONResponse({"error": f"no project id in the request (got {project!r})"}, status_code=400)
        try:
            return {**trainer.start(pid), "model_version": backend.model_version}
        except TrainingBusy as e:
            return JSONResponse({"error": str(e), "model_version": backend.model_version}, status_code=409)

    @app.post("/webhook", response_model=None)
    def webhook(body: dict[str, Any] = Body(...)) -> Any:
        action = str(body.get("action", ""))
        log.debug("webhook event %s", action)
        if action == "START_TRAINING":
            return start(body.get("project"))
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED") and trainer is not None:
            project = body.get("project")
            pid = project.get("id") if isinstance(project, dict) else None
            started = trainer.annotation_event(int(pid)) if pid is not None and not trainer.running else None
            return {"status": "ok", "action": action, "training": started}
        return {"status": "ok", "action": action, "trained": False}

    @app.post("/train", response_model=None)
    def train(body: dict[str, Any] = Body(default={})) -> Any:
        return start(body.get("project"))

    @app.get("/train")
    def train_status() -> dict[str, Any]:
        return {**(trainer.status if trainer else {"state": "off"}), "serving": backend.model_version}

    @app.delete("/train")
    def train_cancel() -> dict[str, Any]:
        return {"cancelled": bool(trainer and trainer.cancel()), "model_version": backend.model_version}


def create_app(backend: Backend, basic_auth: tuple[str, str] | None = None, limits: Limits | None = None,
               trainer: ServeTrainer | None = None) -> Any:
    """The FastAPI application serving ``backend``.

    Args:
        backend: the model side.
        basic_auth: ``(user, password)`` every request must carry, or ``None``.
        limits: body size and tasks per request (:class:`Limits`; default ``Limits()``).
        trainer: trains on ``/train`` and the webhook's ``START_TRAINING``; ``None``: no training (501).

    Returns:
        An ASGI app: ``fastapi.FastAPI`` inside the body limit (run it with uvicorn, or :func:`serve`).
    """
    from fastapi import Body, Depends, FastAPI, HTTPException, Request
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

    limits = limits or Limits()
    security = HTTPBasic(auto_error=False)

    def authorized(credentials: HTTPBasicCredentials | None = Depends(security)) -> None:
        if basic_auth is None:
            return
        ok = credentials is not None and all(
            secrets.compare_digest(a.encode(), b.encode())
            for a, b in ((credentials.username, basic_auth[0]), (credentials.password, basic_auth[1]))
        )
        if not ok:
            raise HTTPException(401, "this ML backend needs its Basic Auth user and password", {"WWW-Authenticate": "Basic"})

    # the docs routes are declared below, under the same credentials as every other route
    app = FastAPI(title="autolabel ML backend", dependencies=[Depends(authorized)], docs_url=None, redoc_url=None,
                  openapi_url=None)

    def answer(status_and_json: tuple[int, dict[str, Any]]) -> Any:
        status, data = status_and_json
        return data if status == 200 else JSONResponse(data, status_code=status)

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "autolabel", "model_version": backend.model_version}

    app.get("/openapi.json", include_in_schema=False)(lambda: app.openapi())
    app.get("/docs", include_in_schema=False)(lambda: get_swagger_ui_html(openapi_url="/openapi.json", title=app.title))

    @app.post("/setup", response_model=None)
    def setup(body: dict[str, Any] = Body(...)) -> Any:
        return answer(_setup(backend, body))

    def predict(request: Request, body: dict[str, Any] = Body(...)) -> Any:
        arrived = request.scope.get("state", {}).get("arrived", time.monotonic())
        return answer(_predict(backend, limits, body, arrived))

    predict.__annotations__["request"] = Request  # the class itself: it is imported here, not at module level
    app.post("/predict", response_model=None)(predict)

    _training_routes(app, backend, trainer)

    @app.get("/versions")
    def versions() -> dict[str, Any]:
        return {"versions": [backend.model_version]}

    return _BodyLimit(app, limits.max_body_bytes)


def serve(
    backend: Backend,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    basic_auth: tuple[str, str] | None = None,
    log_level: str = "info",
    limits: Limits | None = None,
    trainer: ServeTrainer | None = None,
) -> None:
    """Run the backend with uvicorn until interrupted (binds ``host``, default 127.0.0.1);
    every log line has its query strings redacted (:mod:`~autolabel.serve.redact`)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from autolabel.serve.redact import install

    install()
    config = copy.deepcopy(LOGGING_CONFIG)  # uvicorn's handlers, each with the redacting filter
    config.setdefault("filters", {})["redact"] = {"()": "autolabel.serve.redact.RedactFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    log.info("serving %r on http://%s:%d (%s)%s", backend, host, port, limits or Limits(),
             " (training on)" if trainer else "")
    uvicorn.run(create_app(backend, basic_auth, limits, trainer), host=host, port=port, log_level=log_level, log_config=config)
