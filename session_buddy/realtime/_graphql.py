"""GraphQL requests the C core forwards (SPEC section 13): a graphql-transport-ws `subscribe`
(EV_GQL_OPERATION) and a request to /graphql (EV_GQL_HTTP).  Each is answered exactly once, on
the asyncio thread: a subscription becomes a compiled selection that C serves from then on, a
query is executed here, and anything that goes wrong ends in an error reply, logged.

What to answer is decided by two plain functions, operation_answer and http_answer; the
handler only carries their answers to ServerBase's commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from session_buddy.realtime._events import LogTopic, topic_logger
from session_buddy.realtime._graphql_document import (
    DocumentError,
    NotAQuery,
    PreparedQuery,
    PreparedSubscription,
    prepare,
)
from session_buddy.realtime._graphql_query import MetricsSource, ServerMetricsSource, execute_query
from session_buddy.realtime._options import AnyLogger

if TYPE_CHECKING:
    from session_buddy.realtime.server import RealTimeMetricsServer

__all__ = ["GraphQLHandler", "http_answer", "operation_answer"]

INTERNAL_ERROR = "Internal server error."


class _BadRequest(Exception):
    """Not a GraphQL request at all: an HTTP error status, or a subscribe error."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _dumps(value: Any) -> str:
    # ASCII: a lone surrogate from the client's JSON stays an escape, never an unencodable str.
    return json.dumps(value, separators=(",", ":"))


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _BadRequest(f"{what} is not valid JSON.") from None


def _params(payload: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    """query, variables and operationName of a GraphQL request's parameters."""
    if not isinstance(payload, dict):
        raise _BadRequest("The request parameters must be a JSON object.")
    query = payload.get("query")
    if not isinstance(query, str) or not query:
        raise _BadRequest("The request has no query (a non-empty string).")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise _BadRequest("variables must be a JSON object or null.")
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        raise _BadRequest("operationName must be a string or null.")
    return query, variables, name


def _get_params(args: list[Any]) -> tuple[str, dict[str, Any] | None, str | None]:
    """The URL's arguments, each "name=value" as lws decoded it (%xx and '+' already)."""
    if len(args) > 16:
        raise _BadRequest("The query string has too many parameters.")
    params: dict[str, Any] = {}
    for arg in args:
        name, _, value = str(arg).partition("=")
        params.setdefault(name, value)
    if "variables" in params:
        params["variables"] = _loads(params["variables"], "variables") if params["variables"] else None
    if params.get("operationName") == "":
        params["operationName"] = None
    return _params(params)


def _post_params(content_type: str, body: str) -> tuple[str, dict[str, Any] | None, str | None]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/graphql":
        return _params({"query": body})
    if media_type not in ("application/json", ""):
        raise _BadRequest(f"Unsupported content type {media_type!r}: send application/json.", 415)
    return _params(_loads(body, "The request body"))


def error_frame(op_id: str, errors: list[dict[str, Any]]) -> str:
    """graphql-transport-ws `error`: the operation ends."""
    return _dumps({"id": op_id, "type": "error", "payload": errors})


def operation_answer(op_id: str, message: Any, source: MetricsSource) -> PreparedSubscription | list[str]:
    """What a subscribe message gets: a subscription to hand to C, or the frames to send, the
    last of which ends the operation (a query's `next` and `complete`, or one `error`)."""
    try:
        payload = message.get("payload") if isinstance(message, dict) else None
        query, variables, name = _params(payload)
        prepared = prepare(query, variables, name)
    except _BadRequest as exc:
        return [error_frame(op_id, [{"message": str(exc)}])]
    except DocumentError as exc:
        return [error_frame(op_id, exc.formatted)]
    if isinstance(prepared, PreparedSubscription):
        return prepared
    response = execute_query(prepared, source)
    return [_dumps({"id": op_id, "type": "next", "payload": response}), _dumps({"id": op_id, "type": "complete"})]


def http_answer(request: dict[str, Any], source: MetricsSource) -> tuple[int, dict[str, Any]]:
    """GraphQL over HTTP: the status and the application/json body for one request, as C
    forwards it (`method`, `args`, `body`, `content_type`).  Only queries run."""
    try:
        if request.get("method") == "GET":
            query, variables, name = _get_params(list(request.get("args") or []))
        else:
            query, variables, name = _post_params(str(request.get("content_type") or ""), str(request.get("body") or ""))
        prepared = prepare(query, variables, name, subscriptions=False)
    except _BadRequest as exc:
        return exc.status, {"errors": [{"message": str(exc)}]}
    except NotAQuery as exc:
        return 400, {"errors": exc.formatted}
    except DocumentError as exc:
        # An application/json response carries request errors with 200 (GraphQL over HTTP).
        return 200, {"errors": exc.formatted}
    assert isinstance(prepared, PreparedQuery)
    return 200, execute_query(prepared, source)


class GraphQLHandler:
    """The GraphQL side of one server: takes the two event kinds, answers through
    gql_subscribe / gql_send / http_reply."""

    def __init__(self, server: RealTimeMetricsServer) -> None:
        self._server = server

    def _log(self) -> AnyLogger:
        return topic_logger(self._server.logger, LogTopic.SERVER)

    def _source(self) -> MetricsSource:
        return ServerMetricsSource(self._server, self._server.max_message_size)

    def on_operation(self, conn: int, text: str) -> None:
        """EV_GQL_OPERATION: `{"id", "user", "message"}`, message the client's whole subscribe
        message as a JSON string (C escapes it, so any bytes the client sent arrive intact)."""
        try:
            event = json.loads(text)
            op_id = event["id"]
            if not isinstance(op_id, str):
                raise TypeError("the operation id is not a string")
        except Exception:
            # C checked the id before forwarding: without one there is nobody to answer.
            self._log().exception("GraphQL operation event on connection %d is malformed: %.200r", conn, text)
            return
        try:
            answer = operation_answer(op_id, _loads(str(event.get("message")), "The message"), self._source())
            if isinstance(answer, PreparedSubscription):
                self._subscribe(conn, op_id, answer)
                return
            for i, frame in enumerate(answer):
                self._server.gql_send(conn, op_id, frame, i == len(answer) - 1)
        except Exception:
            self._log().exception("GraphQL operation %r on connection %d failed", op_id, conn)
            self._send_error(conn, op_id)

    def _subscribe(self, conn: int, op_id: str, sub: PreparedSubscription) -> None:
        try:
            self._server.gql_subscribe(conn, op_id, sub.skill, sub.selection, sub.since_epoch, sub.since_seq)
        except ValueError:
            # C could not read what the compiler wrote: a bug here, not the client's fault.
            self._log().exception("C refused the compiled selection %r of operation %r", sub.selection, op_id)
            self._send_error(conn, op_id)

    def _send_error(self, conn: int, op_id: str) -> None:
        try:
            self._server.gql_send(conn, op_id, error_frame(op_id, [{"message": INTERNAL_ERROR}]), True)
        except Exception:  # not running any more: the connection goes away with the server
            self._log().exception("GraphQL error reply for operation %r on connection %d failed", op_id, conn)

    def on_http(self, request: int, text: str) -> None:
        """EV_GQL_HTTP: `{"method", "args", "body", "content_type", "user"}`."""
        try:
            status, response = http_answer(json.loads(text), self._source())
        except Exception:
            self._log().exception("GraphQL HTTP request %d failed", request)
            status, response = 500, {"errors": [{"message": INTERNAL_ERROR}]}
        try:
            self._server.http_reply(request, status, "application/json", _dumps(response).encode("ascii"))
        except Exception:
            self._log().exception("GraphQL HTTP reply to request %d failed", request)
