"""``genlab rate serve TEST_DIR``: the listening/viewing test web server (FastAPI + uvicorn).

Participant API (token = ``Authorization: Bearer <participant token>``, issued on consent):
  GET  /                      the single-page test (consent → instructions → trials → thank-you)
  GET  /api/config            title, consent text, instructions, scale
  POST /api/session           {"consent": true, "client": {...}} → participant id, token, session id
  POST /api/resume            (token) → a new session for the same participant (after a reload/restart)
  GET  /api/next              (token) → the next unanswered trial, or the completion code when done
  POST /api/response          (token) one answer; stored (committed) before the 200 reply
  GET  /stimuli/{name}        a stimulus of this test (blind file names from the manifest only)
Admin API (``Authorization: Bearer <admin token>``): GET /admin/progress, /admin/export.csv,
/admin/export.json.

Every request body is size-limited (413), every field validated (422 with a message naming the field),
an answer to a trial that is not the caller's is refused (403), a second answer to the same trial
is refused (409); a refused request stores nothing.
"""


import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Literal

from .create import STIMULI, load_manifest, participant_plan
from .design import MOS_LABELS
from .storage import DuplicateResponse, export_rows, open_storage, rows_to_csv

STATIC = Path(__file__).parent / "static"
SECRETS = ".secrets.json"
DEFAULT_DB = "responses.sqlite"
MAX_BODY = 16 * 1024
STIM_RE = re.compile(r"^[0-9a-f]{20}\.(png|jpg|jpeg|gif|webp|wav|txt)$")
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".wav": "audio/wav", ".txt": "text/plain; charset=utf-8"}
MIN_TIME_SLACK_S = 0.25


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _secrets(test_dir: Path) -> dict[str, str]:
    """Admin token and the key for trial ids / completion codes, kept (mode 600) in the test folder
    so that a restarted server honours the same tokens."""
    p = test_dir / SECRETS
    if p.is_file():
        return json.loads(p.read_text())
    s = {"admin_token": secrets.token_urlsafe(24), "key": secrets.token_hex(32)}
    tmp = p.with_name(f"{SECRETS}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(s, f)
    try:
        os.link(tmp, p)          # atomic: if another process got there first, use its secrets
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return json.loads(p.read_text())


class BodyLimit:
    """ASGI middleware: refuse request bodies above ``limit`` bytes with 413 before the app sees them."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def _refuse(self, send) -> None:
        body = json.dumps({"error": f"request body too large (limit {self.limit} bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    if int(v) > self.limit:
                        return await self._refuse(send)
                except ValueError:
                    return await self._refuse(send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(send)
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        done = False

        async def replay():
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class RateService:
    """The test logic, independent of the web framework (the FastAPI routes are thin wrappers)."""

    def __init__(self, test_dir: str | Path, db: str | None = None, admin_token: str | None = None):
        self.dir = Path(test_dir)
        self.manifest = load_manifest(self.dir, verify=True)
        self.design = self.manifest["design"]
        sec = _secrets(self.dir)
        self.admin_token = admin_token or sec["admin_token"]
        self.key = sec["key"].encode()
        self.db_target = db or str(self.dir / DEFAULT_DB)
        self.store = open_storage(self.db_target)
        self.n_trials = int(self.manifest["n_trials"])
        self.min_time_ms = int(round(float(self.design["min_time_s"]) * 1000))
        self.require_played = bool(self.design["require_played"])
        self.files = self.manifest["files"]
        self.stim_dir = (self.dir / STIMULI).resolve()
        self._lock = threading.Lock()
        self._by_token: dict[str, dict[str, Any]] = {}
        self._answered: dict[str, set[int]] = {}
        self._sessions: dict[str, str] = {}
        self._served: dict[tuple[str, int], float] = {}

    # ---------------------------------------------------------------- helpers
    def _mac(self, msg: str, n: int = 16) -> str:
        return hmac.new(self.key, msg.encode(), hashlib.sha256).hexdigest()[:n]

    def trial_id(self, pid: str, entry: dict[str, Any]) -> str:
        return self._mac(f"trial|{pid}|{entry['index']}|{entry['base']}")

    def completion_code(self, pid: str) -> str:
        return self._mac(f"done|{pid}", 10).upper()

    @staticmethod
    def _hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def participant(self, authorization: str | None) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 200:
            raise ApiError(401, "missing participant token: send 'Authorization: Bearer <token>' "
                                "(you get one from POST /api/session)")
        th = self._hash_token(authorization[7:].strip())
        with self._lock:
            p = self._by_token.get(th)
        if p is None:
            p = self.store.participant_by_token(th)
            if p is None:
                raise ApiError(403, "unknown participant token")
            with self._lock:
                self._by_token[th] = p
        return p

    def answered(self, pid: str) -> set[int]:
        with self._lock:
            a = self._answered.get(pid)
        if a is None:
            a = self.store.answered(pid)
            with self._lock:
                a = self._answered.setdefault(pid, a)
        return a

    def _client(self, client: dict[str, Any] | None, user_agent: str | None) -> dict[str, Any]:
        c = dict(client or {})
        c["user_agent"] = (user_agent or "")[:256]
        return c

    # ---------------------------------------------------------------- participant API
    def config(self) -> dict[str, Any]:
        d = self.design
        return {"title": d["title"], "consent": d["consent"], "instructions": d["instructions"],
                "question": d["question"], "type": d["type"], "modality": d["modality"],
                "n_trials": self.n_trials, "allow_no_preference": d["allow_no_preference"],
                "min_time_ms": self.min_time_ms, "require_played": self.require_played,
                "mos_labels": list(MOS_LABELS)}

    def new_session(self, client: dict[str, Any] | None, user_agent: str | None) -> dict[str, Any]:
        pid = "p-" + secrets.token_hex(6)
        token = secrets.token_urlsafe(24)
        seed = secrets.randbits(31)
        c = self._client(client, user_agent)
        number, plan = self.store.add_participant(
            pid, self._hash_token(token), seed, c, lambda num, s: participant_plan(self.manifest, num, s))
        sid = "s-" + secrets.token_hex(6)
        self.store.add_session(sid, pid, c)
        with self._lock:
            self._by_token[self._hash_token(token)] = {"participant_id": pid, "number": number, "seed": seed,
                                                       "plan": plan}
            self._answered[pid] = set()
            self._sessions[sid] = pid
        return {"participant_id": pid, "token": token, "session_id": sid, "n_trials": len(plan)}

    def resume(self, p: dict[str, Any], client: dict[str, Any] | None, user_agent: str | None) -> dict[str, Any]:
        sid = "s-" + secrets.token_hex(6)
        self.store.add_session(sid, p["participant_id"], self._client(client, user_agent))
        with self._lock:
            self._sessions[sid] = p["participant_id"]
        done = len(self.answered(p["participant_id"]))
        return {"participant_id": p["participant_id"], "session_id": sid, "n_trials": len(p["plan"]),
                "answered": done}

    def trial_payload(self, p: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        slots = "ABCDEFGHIJKLMNOP"
        out = {"index": entry["index"], "trial_id": self.trial_id(p["participant_id"], entry),
               "kind": entry["kind"], "n_trials": len(p["plan"]),
               "stimuli": [{"slot": slots[i], "url": f"/stimuli/{f}"} for i, f in enumerate(entry["stimuli"])]}
        if "reference" in entry:
            out["reference"] = {"url": f"/stimuli/{entry['reference']}"}
        return out

    def next_trial(self, p: dict[str, Any]) -> dict[str, Any]:
        pid = p["participant_id"]
        answered = self.answered(pid)
        for e in p["plan"]:
            if e["index"] not in answered:
                with self._lock:
                    self._served.setdefault((pid, e["index"]), time.monotonic())
                return {"done": False, "answered": len(answered), "trial": self.trial_payload(p, e)}
        return {"done": True, "answered": len(answered), "completion_code": self.completion_code(pid)}

    def _validate_answer(self, entry: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        kind = entry["kind"]
        n = len(entry["stimuli"])

        def keys(expected: set[str]):
            if set(response) != expected:
                raise ApiError(422, f"a {kind} response must have exactly the field(s) {sorted(expected)}, "
                                    f"got {sorted(response)}")

        if kind == "mos":
            keys({"rating"})
            r = response["rating"]
            if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= 5:
                raise ApiError(422, f"rating must be an integer from 1 to 5 (ITU-T P.800 ACR), got {r!r}")
            return {"rating": r}
        if kind == "pairwise":
            keys({"choice"})
            c = response["choice"]
            allowed = ["left", "right"] + (["none"] if self.design["allow_no_preference"] else [])
            if c not in allowed:
                raise ApiError(422, f"choice must be one of {allowed}, got {c!r}")
            return {"choice": c}
        if kind == "mushra":
            keys({"scores"})
            s = response["scores"]
            if not isinstance(s, list) or len(s) != n:
                raise ApiError(422, f"scores must be a list of {n} integers (one per slot A..), got {s!r}"[:300])
            for v in s:
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
                    raise ApiError(422, f"every MUSHRA score must be an integer from 0 to 100, got {v!r}")
            return {"scores": s}
        keys({"judgement"})
        j = response["judgement"]
        if j not in ("real", "fake"):
            raise ApiError(422, f"judgement must be 'real' or 'fake', got {j!r}")
        return {"judgement": j}

    def answer(self, p: dict[str, Any], body: dict[str, Any], user_agent: str | None) -> dict[str, Any]:
        pid = p["participant_id"]
        sid = body["session_id"]
        with self._lock:
            owner = self._sessions.get(sid)
        if owner is None:
            owner = self.store.session_owner(sid)
            if owner is not None:
                with self._lock:
                    self._sessions[sid] = owner
        if owner != pid:
            raise ApiError(403, f"session {sid!r} is not one of your sessions")
        idx = body["trial_index"]
        plan = p["plan"]
        if not 0 <= idx < len(plan):
            raise ApiError(422, f"trial_index must be between 0 and {len(plan) - 1}, got {idx}")
        entry = plan[idx]
        if not hmac.compare_digest(body["trial_id"], self.trial_id(pid, entry)):
            raise ApiError(403, f"trial {body['trial_id']!r} is not your trial number {idx}; "
                                "answer only the trials you were given")
        if idx in self.answered(pid):
            raise ApiError(409, f"trial {idx} was already answered; each trial is answered once")
        resp = self._validate_answer(entry, body["response"])
        played = body.get("played") or []
        if self.design["modality"] == "audio" and self.require_played:
            if len(played) != len(entry["stimuli"]) or not all(played):
                raise ApiError(422, "play every recording to the end before answering "
                                    f"(played={played}, {len(entry['stimuli'])} recordings)")
        rt = body["rt_ms"]
        if rt < self.min_time_ms:
            raise ApiError(422, f"answered too quickly: {rt} ms on the trial, the minimum is {self.min_time_ms} ms")
        with self._lock:
            served = self._served.get((pid, idx))
        if served is not None and time.monotonic() - served < self.min_time_ms / 1000 - MIN_TIME_SLACK_S:
            raise ApiError(422, f"answered too quickly: the minimum time on a trial is {self.min_time_ms} ms")
        row = {"participant_id": pid, "session_id": sid, "trial_index": idx, "trial_id": body["trial_id"],
               "base_trial": entry["base"], "kind": entry["kind"], "trap": int(entry["trap"]),
               "stimuli": entry["stimuli"] + ([entry["reference"]] if "reference" in entry else []),
               "positions": entry["positions"], "response": resp, "rt_ms": rt, "played": played,
               "client": self._client(body.get("client"), user_agent), "received": time.time()}
        try:
            rid = self.store.add_response(row)
        except DuplicateResponse:
            raise ApiError(409, f"trial {idx} was already answered; each trial is answered once") from None
        with self._lock:
            self._answered.setdefault(pid, set()).add(idx)
            self._served.pop((pid, idx), None)
        return {"stored": True, "response_id": rid, "trial_index": idx}

    # ---------------------------------------------------------------- stimuli and admin
    def stimulus_path(self, name: str) -> Path:
        if not STIM_RE.match(name):
            raise ApiError(400, f"invalid stimulus name {name[:80]!r}: stimuli are served only by their "
                                "blind names from this test's manifest")
        if name not in self.files:
            raise ApiError(404, f"no stimulus {name!r} in this test")
        p = (self.stim_dir / name).resolve()
        if p.parent != self.stim_dir or not p.is_file():
            raise ApiError(404, f"no stimulus {name!r} in this test")
        return p

    def check_admin(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(401, "missing admin token: send 'Authorization: Bearer <admin token>' "
                                "(printed by `genlab rate serve`, stored in TEST_DIR/.secrets.json)")
        if not hmac.compare_digest(authorization[7:].strip().encode(), self.admin_token.encode()):
            raise ApiError(403, "wrong admin token")

    def progress(self) -> dict[str, Any]:
        rows = self.store.responses()
        parts = self.store.participants()
        per: dict[str, int] = {}
        for r in rows:
            per[r["participant_id"]] = per.get(r["participant_id"], 0) + 1
        completed = sum(1 for p in parts if per.get(p["participant_id"], 0) >= len(p["plan"]))
        return {"test": self.design["name"], "type": self.design["type"], "participants": len(parts),
                "completed": completed, "responses": len(rows), "trials_per_participant": self.n_trials,
                "counts": self.store.counts()}

    def export_rows(self) -> list[dict[str, Any]]:
        return export_rows(self.store, self.files)

    def export_csv(self) -> str:
        return rows_to_csv(self.export_rows())


def make_app(test_dir: str | Path, db: str | None = None, admin_token: str | None = None,
             max_body: int = MAX_BODY):
    """The ASGI application for one test folder (FastAPI, wrapped in the body-size limit)."""
    from fastapi import FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    svc = RateService(test_dir, db=db, admin_token=admin_token)

    class Client(BaseModel):
        model_config = ConfigDict(extra="forbid")
        screen_w: int | None = Field(None, ge=0, le=20000)
        screen_h: int | None = Field(None, ge=0, le=20000)
        viewport_w: int | None = Field(None, ge=0, le=20000)
        viewport_h: int | None = Field(None, ge=0, le=20000)
        input: Literal["keyboard", "pointer", "touch", "mixed", "script"] | None = None

    class SessionIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        consent: bool
        client: Client | None = None

    class ResumeIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        client: Client | None = None

    class AnswerIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        session_id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
        trial_index: int = Field(..., ge=0, le=100000)
        trial_id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
        response: dict[str, Any]
        rt_ms: int = Field(..., ge=0, le=24 * 3600 * 1000)
        played: list[bool] | None = Field(None, max_length=16)
        client: Client | None = None

    app = FastAPI(title=f"genlab rate: {svc.design['name']}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = svc

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        msg = {404: f"no such page: {request.url.path[:100]}", 405: "method not allowed here"}.get(
            exc.status_code, str(exc.detail))
        return JSONResponse({"error": msg}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        msgs = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            msgs.append(f"{loc or 'body'}: {e.get('msg')}")
        return JSONResponse({"error": "invalid request: " + "; ".join(msgs)}, status_code=422)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; media-src 'self'; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'")
        if request.url.path.startswith(("/api", "/admin")):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/", response_class=HTMLResponse)
    def index():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/config")
    def config():
        return svc.config()

    @app.post("/api/session")
    def session(body: SessionIn, user_agent: str | None = Header(None)):
        if not body.consent:
            raise ApiError(422, "consent is required to take part (consent: true)")
        return svc.new_session(body.client.model_dump(exclude_none=True) if body.client else None, user_agent)

    @app.post("/api/resume")
    def resume(body: ResumeIn, authorization: str | None = Header(None), user_agent: str | None = Header(None)):
        p = svc.participant(authorization)
        return svc.resume(p, body.client.model_dump(exclude_none=True) if body.client else None, user_agent)

    @app.get("/api/next")
    def next_trial(authorization: str | None = Header(None)):
        return svc.next_trial(svc.participant(authorization))

    @app.post("/api/response")
    def response(body: AnswerIn, authorization: str | None = Header(None), user_agent: str | None = Header(None)):
        p = svc.participant(authorization)
        d = body.model_dump()
        d["client"] = body.client.model_dump(exclude_none=True) if body.client else None
        if len(json.dumps(d["response"])) > 2048:
            raise ApiError(413, "response field too large (limit 2048 bytes)")
        return svc.answer(p, d, user_agent)

    @app.get("/stimuli/{name:path}")
    def stimulus(name: str):
        p = svc.stimulus_path(name)
        return FileResponse(p, media_type=MEDIA[p.suffix], headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/admin/progress")
    def progress(authorization: str | None = Header(None)):
        svc.check_admin(authorization)
        return svc.progress()

    @app.get("/admin/export.csv")
    def export_csv(authorization: str | None = Header(None)):
        svc.check_admin(authorization)
        return Response(svc.export_csv(), media_type="text/csv; charset=utf-8")

    @app.get("/admin/export.json")
    def export_json(authorization: str | None = Header(None)):
        svc.check_admin(authorization)
        return svc.export_rows()

    return BodyLimit(app, max_body)


def _app_from_env():
    """App factory for multi-worker uvicorn (each worker process builds its own app)."""
    return make_app(os.environ["GENLAB_RATE_TEST_DIR"], db=os.environ.get("GENLAB_RATE_DB") or None,
                    admin_token=os.environ.get("GENLAB_RATE_ADMIN_TOKEN") or None)


def serve(test_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, db: str | None = None,
          admin_token: str | None = None, log_level: str = "warning", workers: int = 1) -> None:
    """Serve the test in ``test_dir`` with uvicorn; prints the participant link and the admin token.

    ``host`` defaults to loopback; pass ``0.0.0.0`` only behind a TLS reverse proxy.
    ``db`` is a SQLite path (default ``TEST_DIR/responses.sqlite``) or a ``postgresql://`` URL.
    ``workers`` > 1 runs several uvicorn processes on the same database (SQLite WAL or PostgreSQL);
    uniqueness and numbering are enforced by the database, so answers stay exactly-once.
    """
    import uvicorn

    app = make_app(test_dir, db=db, admin_token=admin_token)
    svc = app.app.state.service
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    print(f"genlab rate: serving test '{svc.design['name']}' ({svc.design['type']}, {svc.n_trials} trials "
          f"per participant)", flush=True)
    print(f"participant link: http://{shown}:{port}/", flush=True)
    print(f"admin token:      {svc.admin_token}", flush=True)
    print(f"progress:         curl -H 'Authorization: Bearer {svc.admin_token}' http://{shown}:{port}/admin/progress",
          flush=True)
    print(f"responses stored in {svc.db_target}", flush=True)
    if workers > 1:
        svc.store.close()
        os.environ.update(GENLAB_RATE_TEST_DIR=str(Path(test_dir).resolve()), GENLAB_RATE_DB=db or "",
                          GENLAB_RATE_ADMIN_TOKEN=admin_token or "")
        uvicorn.run("genlab.apps.rate.server:_app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, access_log=False)
    else:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
