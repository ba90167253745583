"""How the informer retries (a stand-in server: these failures cannot be made on demand)."""

from __future__ import annotations

import json
import threading
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbctl.kube.informer import Informer


class Stream:
    def __init__(self, events: list[dict[str, Any]], then: BaseException | None = None) -> None:
        self.body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
        self.then = then

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.body
        if self.then:
            raise self.then

    def release_conn(self) -> None:
        pass


def svc(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d", "resourceVersion": rv}}


def run_against(answers: list[Any]) -> list[tuple[str, str | None]]:
    """Run the informer over scripted answers; return each call as (list|watch, version)."""
    calls: list[tuple[str, str | None]] = []
    stop = threading.Event()

    def server(**kw: Any) -> Any:
        calls.append(("watch" if kw.get("watch") else "list", kw.get("resource_version")))
        if not answers:
            stop.set()
            raise ConnectionError("done")
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    Informer("t", server, lambda *_: None, max_backoff=0.0).run(stop)
    return calls


class Listed:
    data = json.dumps({"metadata": {"resourceVersion": "10"}, "items": []}).encode()


def test_a_dropped_connection_resumes_from_the_last_event_seen() -> None:
    calls = run_against(
        [
            Listed(),
            Stream([{"type": "ADDED", "object": svc("a", "11")}], then=ConnectionError("reset")),
            ConnectionError("refused"),  # the API server is down for a while
            Stream([]),
        ]
    )
    assert calls[:4] == [("list", None), ("watch", "10"), ("watch", "11"), ("watch", "11")]


def test_a_server_error_in_the_stream_lists_afresh_rather_than_retry_it_forever() -> None:
    error = {"type": "ERROR", "object": {"code": 500, "message": "future revision"}}
    calls = run_against([Listed(), Stream([error]), Listed(), Stream([])])
    assert calls[:3] == [("list", None), ("watch", "10"), ("list", None)]


def test_410_and_other_refusals_relist_and_429_resumes() -> None:
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
    calls = run_against(
        [Listed(), Stream([gone]), Listed(), ApiException(status=429), ApiException(status=403)]
    )
    assert [c[0] for c in calls[:6]] == ["list", "watch", "list", "watch", "watch", "list"]
