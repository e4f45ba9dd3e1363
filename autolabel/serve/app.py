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
route requires those credentials (Label Studio's ML backend "Basic Auth" setting). The
Label Studio token the backend reads images with is never logged, and request bodies
(which carry it on ``/setup``) are never logged.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from autolabel.serve.backend import Backend
from autolabel.serve.labelconfig import LabelConfigMismatch
from autolabel.serve.training import ServeTrainer, TrainingBusy

__all__ = ["create_app", "serve", "DEFAULT_HOST", "DEFAULT_PORT"]

log = logging.getLogger("autolabel.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090


def create_app(backend: Backend, basic_auth: tuple[str, str] | None = None, trainer: ServeTrainer | None = None) -> Any:
    """The FastAPI application serving ``backend``.

    Args:
        backend: the model side.
        basic_auth: ``(user, password)`` every request must carry, or ``None``.
        trainer: trains on ``/train`` and the webhook's ``START_TRAINING``; ``None``: no training (501).

    Returns:
        A ``fastapi.FastAPI`` app (run it with uvicorn, or :func:`serve`).
    """
    from fastapi import Body, Depends, FastAPI, HTTPException
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

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

    app = FastAPI(title="autolabel ML backend", dependencies=[Depends(authorized)])
    lock = threading.Lock()  # one batch in inference at a time; a detector need not be thread-safe

    def mismatch(e: LabelConfigMismatch) -> JSONResponse:
        log.error("labeling config does not fit model %s: %s", backend.model_version, e)
        return JSONResponse({"error": str(e), "model_version": backend.model_version}, status_code=422)

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "autolabel", "model_version": backend.model_version}

    @app.post("/setup", response_model=None)
    def setup(body: dict[str, Any] = Body(...)) -> Any:
        try:
            return backend.setup(
                str(body.get("project", "")), str(body.get("schema") or ""), body.get("hostname"), body.get("access_token")
            )
        except LabelConfigMismatch as e:
            return mismatch(e)

    @app.post("/predict", response_model=None)
    def predict(body: dict[str, Any] = Body(...)) -> Any:
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            return JSONResponse({"error": "the request has no 'tasks' list"}, status_code=400)
        try:
            with lock:
                results = backend.predict(tasks, body.get("label_config"), body.get("project"))
        except LabelConfigMismatch as e:
            return mismatch(e)
        return {"results": results, "model_version": backend.model_version}

    _training_routes(app, backend, trainer)

    @app.get("/versions")
    def versions() -> dict[str, Any]:
        return {"versions": [backend.model_version]}

    return app


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


def serve(
    backend: Backend,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    basic_auth: tuple[str, str] | None = None,
    log_level: str = "info",
    trainer: ServeTrainer | None = None,
) -> None:
    """Run the backend with uvicorn until interrupted (binds ``host``, default 127.0.0.1)."""
    import uvicorn

    log.info("serving %r on http://%s:%d%s", backend, host, port, " (training on)" if trainer else "")
    uvicorn.run(create_app(backend, basic_auth, trainer), host=host, port=port, log_level=log_level)
