"""The annotation web app (FastAPI + plain HTML/JS from ``static/``, no build step).

API (JSON; all /api routes except /api/study need the study token when one is set, sent as
the ``X-Study-Token`` header or the cookie set by /api/login):
  GET  /api/study                      title, number of pairs, whether a token is needed
  POST /api/login   {annotator, token} checks the token, sets the cookie, returns progress
  GET  /api/next?annotator=NAME        the next pair for NAME in a random display order
  POST /api/vote    {...}              records one vote (see VoteIn)
  GET  /api/progress?annotator=NAME
  GET  /api/audio/{pair_id}/{side}     side a|b|ref; only clips listed in the manifest
"""

import hmac
import logging
import re
from pathlib import Path
from typing import Literal, Optional

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from musicjudge.annotate.study import Study, VoteRejected

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "mj_study_token"
ANNOTATOR_PATTERN = r"^[\w][\w .@'-]{0,63}$"
MAX_BODY_BYTES = 16 * 1024
_AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".m4a": "audio/mp4"}


class Played(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first: bool = False
    second: bool = False
    ref: bool = False


class VoteIn(BaseModel):
    """One submission, in *displayed* terms (first/second clip on screen)."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=64, pattern=ANNOTATOR_PATTERN)
    pair_id: str = Field(min_length=1, max_length=200)
    musicality: Literal["first", "second", "tie"]
    alignment: Optional[Literal["first", "second", "tie"]] = None
    confidence_musicality: int = Field(ge=1, le=5)
    confidence_alignment: Optional[int] = Field(default=None, ge=1, le=5)
    reason: Optional[str] = Field(default=None, max_length=1000)
    played: Played = Played()
    elapsed_s: Optional[float] = Field(default=None, ge=0, le=86400)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=64, pattern=ANNOTATOR_PATTERN)
    token: Optional[str] = Field(default=None, max_length=256)


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` (413) before any endpoint reads them. A body
    without Content-Length (chunked) is read up to the limit here and replayed downstream, so
    the endpoint never sees more than ``max_bytes``."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await self._reject(send)
            return await self.app(scope, receive, send)
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await self._reject(send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        body = b'{"detail":"request body too large"}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def create_app(study: Study, *, token: Optional[str] = None, title: Optional[str] = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app for ``study``. ``token``: optional shared access token for the study."""
    app = FastAPI(title="musicjudge annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.study = study
    study_title = title or study.manifest.stem

    def authorised(request: Request) -> bool:
        if not token:
            return True
        given = request.headers.get("x-study-token") or request.cookies.get(TOKEN_COOKIE) or ""
        return hmac.compare_digest(given.encode(), token.encode())

    def require_token(request: Request) -> None:
        if not authorised(request):
            raise HTTPException(status_code=401, detail="missing or wrong study token")

    def check_annotator(name: str) -> str:
        if not re.match(ANNOTATOR_PATTERN, name or ""):
            raise HTTPException(status_code=422, detail="annotator name: 1-64 letters, digits, spaces or . @ ' -")
        return name

    @app.middleware("http")
    async def no_store(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/api/") and not request.url.path.startswith("/api/audio/"):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'self'; media-src 'self'; img-src 'self' data:"
        return response

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/study")
    def study_info():
        return {"title": study_title, "total": study.total, "token_required": bool(token)}

    @app.post("/api/login")
    def login(body: LoginIn, request: Request):
        if token and not (body.token and hmac.compare_digest(body.token.encode(), token.encode())):
            raise HTTPException(status_code=401, detail="wrong study token; ask the study organiser")
        response = JSONResponse({"annotator": body.annotator, "progress": study.progress(body.annotator)})
        if token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/api/progress")
    def progress(request: Request, annotator: str = Query(..., max_length=64)):
        require_token(request)
        return study.progress(check_annotator(annotator))

    @app.get("/api/next")
    def next_pair(request: Request, annotator: str = Query(..., max_length=64)):
        require_token(request)
        check_annotator(annotator)
        assignment = study.next_assignment(annotator)
        if assignment is None:
            return {"done": True, "progress": study.progress(annotator)}
        pair = study.pairs[assignment.pair_id]
        first, second = ("a", "b") if assignment.order == "AB" else ("b", "a")
        base = f"/api/audio/{pair.id}"
        ins = pair.instruction
        return {
            "done": False,
            "pair_id": pair.id,
            "instruction": {"text": ins.text, "lyrics": ins.lyrics, "kind": ins.kind},
            "audio": {"ref": f"{base}/ref" if ins.ref_audio else None, "first": f"{base}/{first}", "second": f"{base}/{second}"},
            "ask_alignment": ins.kind != "none",
            "progress": study.progress(annotator),
        }

    @app.post("/api/vote")
    def vote(body: VoteIn, request: Request):
        require_token(request)
        pair = study.pairs.get(body.pair_id)
        if pair is None:
            raise HTTPException(status_code=404, detail=f"unknown pair {body.pair_id!r}")
        displayed = {"musicality": body.musicality}
        confidence = {"musicality": body.confidence_musicality}
        if pair.instruction.kind != "none":
            if body.alignment is None or body.confidence_alignment is None:
                raise HTTPException(status_code=422, detail="alignment and confidence_alignment are required for this pair")
            displayed["alignment"] = body.alignment
            confidence["alignment"] = body.confidence_alignment
        try:
            row = study.record_vote(body.annotator, body.pair_id, displayed, confidence, reason=(body.reason or "").strip() or None,
                                    played=body.played.model_dump(), elapsed_s=body.elapsed_s)
        except VoteRejected as e:
            raise HTTPException(status_code=e.status, detail=e.message) from None
        return {"ok": True, "vote_id": row["id"], "progress": study.progress(body.annotator)}

    @app.get("/api/audio/{pair_id}/{side}")
    def audio(pair_id: str, side: str, request: Request):
        require_token(request)
        path = study.audio_path(pair_id, side)
        if path is None:
            raise HTTPException(status_code=404, detail="no such clip")
        return FileResponse(path, media_type=_AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if max_body_bytes:
        app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app
