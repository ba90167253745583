"""List-then-watch of one resource kind into a cache of raw dicts, relisting on 410 (I/O).

Objects stay plain JSON dicts: the adapters read the fields they need, including fields the
client's models may lack. A dropped watch resumes from the last resourceVersion; an expired
one (410 Gone) relists; after any other error the watch resumes from its last version after a
backoff. A relist reports deletions it missed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbctl import objects

log = logging.getLogger(__name__)

# The API server's JSON for one object: every read narrows what it gets (see lbctl.objects).
Obj = dict[str, object]
# Receives ("ADDED" | "MODIFIED" | "DELETED", object); called from the informer's thread.
Handler = Callable[[str, Obj], None]


class Response(Protocol):
    """What a list call made with ``_preload_content=False`` returns: urllib3's HTTPResponse,
    as much of it as the informer uses."""

    data: bytes

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]: ...

    def release_conn(self) -> None: ...

    def close(self) -> None: ...


# A generated ``list_*`` method of the kubernetes client (``CoreV1Api.list_node``, ...).
ListFunc = Callable[..., Response]


SHARED_STRINGS_MAX = 65536  # bounds the table: a flood of unique names cannot grow it
SHORT_VALUE = 16  # values this short are mostly enums ("TCP", "LoadBalancer", "IPv4")
_shared: dict[str, str] = {}


def _share(text: str) -> str:
    """One copy of each field name and short value across all cached objects."""
    got = _shared.get(text)
    if got is not None:
        return got
    if len(_shared) < SHARED_STRINGS_MAX:
        _shared[text] = text
    return text


def _shared_copy(value: object) -> object:
    if isinstance(value, dict):
        return {_share(k): _shared_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared_copy(v) for v in value]
    if isinstance(value, str) and len(value) <= SHORT_VALUE:
        return _share(value)
    return value


def slim(obj: Obj) -> Obj:
    """The object as the cache keeps it: without managedFields (no adapter reads them), and
    with field names and short values shared between objects.

    Each watch event is parsed on its own, so every object would otherwise carry its own copy
    of every field name: about 1.8 KB of a v1.34 Service's 5 KB (10,000 Services: 18 MB)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return {_share(k): _shared_copy(v) for k, v in obj.items()}


def obj_key(obj: Mapping[str, object]) -> str:
    meta = objects.meta_of(obj)
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Gone(Exception):
    """The watch's resourceVersion expired: relist."""


class Informer:
    def __init__(
        self,
        name: str,
        list_func: ListFunc,
        handler: Handler,
        *,
        watch_timeout: int = 240,
        max_backoff: float = 10.0,
        **list_kwargs: str,
    ) -> None:
        self.name = name
        self._list = list_func
        self._handler = handler
        self._kwargs = list_kwargs
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._cache: dict[str, Obj] = {}
        self._response: Response | None = None
        self.synced = threading.Event()
        self._version: str | None = None  # where the watch resumes; None: list first

    # --- cache reads (any thread) ---

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._cache.get(key)

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._cache.values())

    # --- the loop ---

    def run(self, stop: threading.Event) -> None:
        failures = 0
        self._version = None
        while not stop.is_set():
            try:
                version = self._version
                if version is None:
                    version = self._version = self._relist()
                    failures = 0
                while not stop.is_set():
                    self._watch(version, stop)
                    version = self._version or version
                    failures = 0
            except Gone:
                log.info("%s: watch expired (410 Gone); relisting", self.name)
                self._version = None
            except Exception as exc:  # the API server may be down: retry, never die
                if stop.is_set():
                    break
                failures += 1
                # As client-go's reflector: after a dropped connection or 429 the watch resumes
                # from the last version seen (the server replays what we missed, or says 410);
                # after any other answer we list afresh.
                if not _resumable(exc):
                    self._version = None
                delay = min(self._max_backoff, 0.2 * 2 ** min(failures, 10))
                delay *= 0.5 + random.random() / 2
                log.warning("%s: %s; retrying in %.1f s", self.name, _short(exc), delay)
                stop.wait(delay)

    def stop(self) -> None:
        """Interrupt a blocked watch read (``run`` then returns once ``stop`` is set)."""
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # closing a dead connection: nothing to do
                response.shutdown() if hasattr(response, "shutdown") else response.close()

    def _relist(self) -> str:
        response = self._list(_preload_content=False, _request_timeout=30, **self._kwargs)
        data = json.loads(response.data)
        version = str(data.get("metadata", {}).get("resourceVersion", ""))
        fresh = {obj_key(o): slim(o) for o in data.get("items") or []}
        with self._lock:
            old, self._cache = self._cache, fresh
        for key, obj in old.items():
            if key not in fresh:
                self._handler("DELETED", obj)
        for key, obj in fresh.items():
            self._handler("MODIFIED" if key in old else "ADDED", obj)
        self.synced.set()
        return version

    def _watch(self, version: str, stop: threading.Event) -> None:
        self._response = response = self._list(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _preload_content=False,
            _request_timeout=(10, self._watch_timeout + 30),
            **self._kwargs,
        )
        try:
            for line in _lines(response):
                if stop.is_set():
                    break
                event = json.loads(line)
                kind, obj = event.get("type"), slim(event.get("object") or {})
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                # Kept as we go: a stream broken later resumes from here, not from its start.
                self._version = str(objects.meta_of(obj).get("resourceVersion") or version)
                version = self._version
                if kind == "BOOKMARK":
                    continue
                key = obj_key(obj)
                with self._lock:
                    if kind == "DELETED":
                        self._cache.pop(key, None)
                    else:
                        self._cache[key] = obj
                self._handler(str(kind), obj)
        finally:
            self._response = None
            response.release_conn()


def _lines(response: Response) -> Iterator[bytes]:
    """Complete lines of a streamed response, however the chunks fall."""
    buffer = b""
    for chunk in response.stream(4096, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _resumable(exc: BaseException) -> bool:
    """A failure after which the same watch may resume: no answer at all, or "too many"."""
    if isinstance(exc, ApiException):
        return bool(exc.status == 429)
    return True  # connection refused, reset, timed out: the server said nothing about us


def _short(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"[:300]


def config_map(api: client.ApiClient, namespace: str, name: str, handler: Handler) -> Informer:
    """The pool ConfigMap ``namespace/name``, alone, listed and watched (controller, speaker)."""
    return Informer(
        "configmap",
        client.CoreV1Api(api).list_namespaced_config_map,
        handler,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )
