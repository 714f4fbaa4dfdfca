"""Who may read and write: a password login (signed session cookie + CSRF token) or API tokens.

Everything secret lives in the store's state document ``_auth``::

    {"password": {"scheme": "scrypt", "n": 16384, "r": 8, "p": 1, "salt": hex, "hash": hex},
     "secret": hex,      # signs session cookies; a new password replaces it (all sessions end)
     "tokens": [{"name": ..., "hash": sha256 hex, "created": unix, "expires": unix | null}],
     "revoked": {session id: unix when it would have expired anyway}}

The password is scrypt-hashed (slow on purpose); API tokens are 256-bit random strings, so a
plain SHA-256 of them is enough and keeps every request cheap. A token is named by the first
12 hex digits of its hash (its ``id``): enough to list and revoke it, useless to forge it.
Sessions are signed cookies (HttpOnly, SameSite=Strict) carrying a session id and the
session's CSRF token; a write made with a session must repeat the CSRF token in
``X-CSRF-Token``. Logging out writes the session id into ``revoked``, so it stays ended across
restarts and in every process that serves the same store. Only a session (someone who knows the
password) makes or revokes tokens: a leaked token cannot breed more of itself. Nothing here logs
a password, a token or a cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio.to_thread
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from ..errors import StoreError
from ..store import Store
from . import shapes
from .documents import Documents
from .errors import ApiError

__all__ = [
    "AUTH_KEY",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Auth",
    "LoginLimiter",
    "Session",
    "TokenInfo",
    "list_tokens",
    "new_token",
    "revoke_tokens",
    "set_password",
]

log = logging.getLogger(__name__)

AUTH_KEY: Final = "_auth"
SESSION_COOKIE: Final = "s0pcm_session"
CSRF_HEADER: Final = "X-CSRF-Token"
#: A session lasts a week from its login.
SESSION_MAX_AGE: Final = 7 * 86400
#: scrypt cost: 16 MiB and some 50 ms per check on a Pi-class CPU.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: Failed logins allowed per client address and window before 429.
LOGIN_FAILURES: Final = 5
LOGIN_WINDOW: Final = 60.0
TOKEN_PREFIX: Final = "s0pcm_"  # noqa: S105 (a label, not a secret)
MAX_PASSWORD: Final = 1024
#: Logged-out sessions remembered; past this many, the signing secret is replaced instead (every
#: session ends), so a flood of logins and logouts cannot grow the document without bound.
MAX_REVOKED: Final = 1000


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=64 * 1024 * 1024
    )


def hash_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return {
        "scheme": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "hash": digest.hex(),
    }


def check_password(password: str, stored: Any) -> bool:
    """Whether ``password`` matches the stored hash (False for a damaged record)."""
    if not isinstance(stored, dict) or stored.get("scheme") != "scrypt":
        return False
    try:
        salt, expected = bytes.fromhex(stored["salt"]), bytes.fromhex(stored["hash"])
        digest = _scrypt(password, salt, int(stored["n"]), int(stored["r"]), int(stored["p"]))
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(digest, expected)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _document(store: Store) -> dict[str, Any]:
    doc = store.state(AUTH_KEY)
    return dict(doc) if isinstance(doc, dict) else {}


def set_password(
    store: Store, password: str, *, revoke_tokens: bool = False, commit: bool = True
) -> None:
    """Set the password that logs in to the dashboard (scrypt-hashed in ``_auth``).

    Replaces the session secret, so every session made with the old password ends;
    ``revoke_tokens`` ends every API token too (a password that leaked may have made some).
    ``commit``: commit the store (pass False when the caller commits, e.g. through the logger).
    Raises ValueError for an empty or absurdly long password.
    """
    if not password or len(password) > MAX_PASSWORD:
        raise ValueError(f"a password has 1..{MAX_PASSWORD} characters")
    doc = _document(store)
    doc["password"] = hash_password(password)
    doc["secret"] = secrets.token_hex(32)
    doc.pop("revoked", None)  # the new secret ends every session anyway
    if revoke_tokens:
        doc["tokens"] = []
    store.set_state(AUTH_KEY, doc)
    if commit:
        store.commit()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown of a token: never the token, nor its whole hash."""

    id: str
    name: str
    created: float | None
    expires: float | None

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def document(self, now: float) -> shapes.Token:
        return shapes.Token(
            id=self.id,
            name=self.name,
            created=self.created,
            expires=self.expires,
            expired=self.expired(now),
        )


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        t for t in doc.get("tokens", []) if isinstance(t, dict) and isinstance(t.get("hash"), str)
    ]


def _info(entry: dict[str, Any]) -> TokenInfo:
    def number(key: str) -> float | None:
        value = entry.get(key)
        return float(value) if isinstance(value, int | float) else None

    return TokenInfo(
        id=str(entry["hash"])[:12],
        name=str(entry.get("name", "")),
        created=number("created"),
        expires=number("expires"),
    )


def list_tokens(doc: dict[str, Any]) -> list[TokenInfo]:
    """The tokens in an ``_auth`` document, oldest first."""
    return [_info(entry) for entry in _entries(doc)]


def new_token(
    store: Store,
    name: str,
    *,
    days: float | None = None,
    now: float | None = None,
    commit: bool = True,
) -> str:
    """A new API token for ``Authorization: Bearer``; returned once, stored only hashed.

    ``days``: it stops working that many days from now (None: until revoked).
    Raises ValueError for a name of no or too many characters, or an impossible expiry.
    """
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("a token's name has 1..64 characters")
    if days is not None and not (0 < days <= shapes.MAX_TOKEN_DAYS):
        raise ValueError(f"a token expires in 1..{shapes.MAX_TOKEN_DAYS} days")
    now = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    doc = _document(store)
    tokens = _entries(doc)
    tokens.append(
        {
            "name": name,
            "hash": _token_hash(token),
            "created": round(now, 3),
            "expires": None if days is None else round(now + days * 86400, 3),
        }
    )
    doc["tokens"] = tokens
    store.set_state(AUTH_KEY, doc)
    if commit:
        store.commit()
    return token


def revoke_tokens(
    store: Store, which: str | None, *, by_name: bool = True, commit: bool = True
) -> list[TokenInfo]:
    """Revoke the token whose id is ``which`` or, failing that and with ``by_name``, every
    token named ``which`` (None: every token). Returns what was revoked (empty: nothing
    matched)."""
    doc = _document(store)
    tokens = _entries(doc)
    if which is None:
        gone = tokens
    else:
        gone = [t for t in tokens if _info(t).id == which.strip().lower()]
        if by_name:
            gone = gone or [t for t in tokens if t.get("name") == which.strip()]
    if gone:
        doc["tokens"] = [t for t in tokens if t not in gone]
        store.set_state(AUTH_KEY, doc)
        if commit:
            store.commit()
    return [_info(t) for t in gone]


class LoginLimiter:
    """At most ``failures`` failed logins per client address in a sliding ``window``."""

    def __init__(
        self,
        *,
        failures: int = LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        now = self.clock()
        seen = self._seen.get(address)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if not seen:
            del self._seen[address]
        return seen

    def retry_after(self, address: str) -> float | None:
        """Seconds until ``address`` may try again; None if it may now."""
        seen = self._recent(address)
        if len(seen) < self.failures:
            return None
        return max(1.0, seen[0] + self.window - self.clock())

    def failed(self, address: str) -> None:
        if len(self._seen) > 10_000:  # a flood of addresses: forget the quiet ones
            for key in [k for k, v in self._seen.items() if len(v) < self.failures]:
                del self._seen[key]
        self._recent(address)
        self._seen.setdefault(address, deque()).append(self.clock())

    def forgive(self, address: str) -> None:
        """Take back the failure counted last (the attempt succeeded)."""
        seen = self._seen.get(address)
        if seen:
            seen.pop()


def _check_csrf(request: Request, session: Session) -> None:
    """A write made with a session repeats its CSRF token (a cross-site form cannot)."""
    presented = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(presented.encode(), session.csrf.encode()):
        raise ApiError(403, "CSRF token missing or wrong", f"send it in {CSRF_HEADER}")


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    csrf: str


class Auth:
    """The checks the handlers call: ``require_read``, ``require_write``, ``login``."""

    def __init__(
        self,
        documents: Documents,
        *,
        public_read: bool,
        commit: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.documents = documents
        self.public_read = public_read
        self._commit = commit
        #: "Now" for token expiry (the app's clock, which tests fix).
        self.clock = clock
        #: Sessions logged out in this process (also when the store could not be written).
        self._revoked_here: set[str] = set()
        self.limiter = LoginLimiter()
        #: Used only when the store cannot keep a secret (read-only): sessions end at restart.
        self._fallback_secret = secrets.token_hex(32)

    def _document(self) -> dict[str, Any]:
        doc = self.documents.get(AUTH_KEY)
        return doc if isinstance(doc, dict) else {}

    # -- secrets

    def _serializer(self, secret: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(secret, salt="s0pcm-session")

    def _secret(self, *, create: bool = False) -> str | None:
        doc = self._document()
        secret = doc.get("secret")
        if isinstance(secret, str) and secret:
            return secret
        if not create:
            return self._fallback_secret
        doc["secret"] = secrets.token_hex(32)
        try:
            self.documents.set(AUTH_KEY, doc)
            self._commit()
        except Exception:  # a read-only store: keep sessions in this process only
            return self._fallback_secret
        return str(doc["secret"])

    def password_set(self) -> bool:
        return isinstance(self._document().get("password"), dict)

    # -- sessions

    def session(self, request: Request) -> Session | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        secret = self._secret()
        if not cookie or secret is None:
            return None
        try:
            data = self._serializer(secret).loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        sid, csrf = data.get("sid"), data.get("csrf")
        if not isinstance(sid, str) or not isinstance(csrf, str):
            return None
        revoked = self._document().get("revoked")
        if sid in self._revoked_here or (isinstance(revoked, dict) and sid in revoked):
            return None
        return Session(sid, csrf)

    def new_session(self) -> tuple[str, Session]:
        """A fresh session: (cookie value, session)."""
        secret = self._secret(create=True) or self._fallback_secret
        session = Session(secrets.token_urlsafe(18), secrets.token_urlsafe(24))
        cookie = self._serializer(secret).dumps({"sid": session.sid, "csrf": session.csrf})
        return cookie, session

    def revoke(self, session: Session) -> None:
        """End ``session`` for good: its id is written to the store (every process sees it).

        Read fresh from the store, not from the documents' two-second cache: written back
        whole, a stale copy would undo a ``passwd`` or ``token revoke`` made elsewhere
        meanwhile. A store that cannot be written (read-only, full) still ends the session in
        this process, and says so."""
        self._revoked_here.add(session.sid)
        now = time.time()
        self.documents.forget(AUTH_KEY)
        doc = self._document()
        kept = doc.get("revoked")
        revoked = {
            sid: until
            for sid, until in (kept.items() if isinstance(kept, dict) else ())
            if isinstance(until, int | float) and until > now
        }
        revoked[session.sid] = round(now + SESSION_MAX_AGE)
        if len(revoked) > MAX_REVOKED:
            doc["secret"] = secrets.token_hex(32)  # ends every session, this one included
            revoked = {}
        doc["revoked"] = revoked
        try:
            self.documents.set(AUTH_KEY, doc)
            self._commit()
        except StoreError as e:
            self.documents.forget(AUTH_KEY)
            log.warning("logout kept in this process only: %s", e)

    # -- tokens

    def _bearer(self, request: Request) -> bool | None:
        """None without an Authorization header; else whether it carries a valid token (one
        that is stored and has not expired)."""
        header = request.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        digest = _token_hash(token.strip())
        now = self.clock()
        found = False
        for entry in _entries(self._document()):
            if hmac.compare_digest(entry["hash"], digest) and not _info(entry).expired(now):
                found = True
        return found

    # -- the checks

    def require_read(self, request: Request) -> None:
        if self.public_read:
            return
        bearer = self._bearer(request)
        if bearer is False:
            raise ApiError(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if bearer or self.session(request) is not None:
            return
        raise ApiError(
            401, "login required", "reading needs a session or an API token",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip

    def require_write(self, request: Request) -> Session | None:
        """The session the write is made in (None: made with a token)."""
        bearer = self._bearer(request)
        if bearer is not None:
            if not bearer:
                raise ApiError(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
            return None
        session = self.session(request)
        if session is None:
            raise ApiError(
                401, "login required", "writing needs a session or an API token",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        _check_csrf(request, session)
        return session

    def require_session(self, request: Request, *, write: bool = True) -> Session:
        """What only a logged-in session may do (managing tokens): a token gets 403.
        ``write``: a change, so the CSRF token must come too (a listing needs none)."""
        bearer = self._bearer(request)
        if bearer is False:
            raise ApiError(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        if bearer:
            raise ApiError(
                403, "a session is needed",
                "tokens are made, listed and revoked by someone logged in with the password, "
                "not with a token",
            )  # fmt: skip
        session = self.session(request)
        if session is None:
            raise ApiError(
                401, "login required", "tokens are managed by a logged-in session",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        if write:
            _check_csrf(request, session)
        return session

    async def check_login(self, address: str, password: str) -> None:
        """Raise 429 while ``address`` is locked out, 401 on a wrong password."""
        wait = self.limiter.retry_after(address)
        if wait is not None:
            log.warning("login from %s refused: too many failed logins", address)
            raise ApiError(
                429, "too many failed logins", f"try again in {wait:.0f} s",
                headers={"Retry-After": str(int(wait + 0.999))},
            )  # fmt: skip
        stored = self._document().get("password")
        # Counted as a failure before the (slow) check, so parallel guesses are limited too.
        self.limiter.failed(address)
        ok = stored is not None and await anyio.to_thread.run_sync(check_password, password, stored)
        if ok:
            self.limiter.forgive(address)
        else:
            log.warning("failed login from %s", address)
            detail = None if stored is not None else "no password set: use s0pcm passwd"
            raise ApiError(401, "wrong password", detail)
