"""GraphQL queries: graphql-core executes a prepared query over what the running server already
answers on the plain protocol, so that a query and a plain client see the same figures.

The server is reached through MetricsSource: the current update as `ServerBase.metrics_update`
gives it, and get_metrics / get_history through an in-process session (the C dispatcher network
clients run).  Plain snake_case fields become the schema's camelCase ones here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from graphql import GraphQLError, execute_sync

from session_buddy.realtime._core import InProcessSession
from session_buddy.realtime._graphql_document import PreparedQuery, graphql_schema

if TYPE_CHECKING:
    from session_buddy.realtime._core import ServerBase

__all__ = ["MetricsSource", "PlainProtocolError", "ServerMetricsSource", "execute_query"]


class PlainProtocolError(Exception):
    """An `error` reply of the plain protocol: its code (`unknown_skill`, ...) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MetricsSource(Protocol):
    """What a query reads, in the plain protocol's shapes."""

    def update(self, skill: str | None) -> dict[str, Any] | None:
        """The `data` of the current metrics_update for skill (None: all skills), or None
        before the first update."""

    def skill_metrics(self, skill: str) -> dict[str, Any]:
        """get_metrics' `data` for skill; PlainProtocolError for a skill with no data."""

    def history(self, skill: str | None, window: int, step: int) -> list[dict[str, Any]]:
        """get_history's `points`; PlainProtocolError for a bad window or step or an unknown skill."""


class ServerMetricsSource:
    """MetricsSource of a running server, on the asyncio thread."""

    def __init__(self, server: ServerBase, max_message_size: int) -> None:
        self._server = server
        self._session = InProcessSession(server, max_message_size)

    def update(self, skill: str | None) -> dict[str, Any] | None:
        text = self._server.metrics_update(skill)
        if text is None:
            return None
        data: dict[str, Any] = json.loads(text)["data"]
        return data

    def _ask(self, message: dict[str, Any], reply_type: str) -> dict[str, Any]:
        reply, _ = self._session.dispatch(json.dumps(message))
        if reply is None:
            raise RuntimeError(f"no reply to {message['type']}")
        answer: dict[str, Any] = json.loads(reply)
        if answer.get("type") == "error":
            raise PlainProtocolError(str(answer.get("code")), str(answer.get("message")))
        if answer.get("type") != reply_type:
            raise RuntimeError(f"{message['type']} answered {answer.get('type')!r}")
        return answer

    def skill_metrics(self, skill: str) -> dict[str, Any]:
        data: dict[str, Any] = self._ask({"type": "get_metrics", "skill_name": skill}, "metrics_response")["data"]
        return data

    def history(self, skill: str | None, window: int, step: int) -> list[dict[str, Any]]:
        answer = self._ask(
            {"type": "get_history", "skill_name": skill, "window": window, "step": step}, "history_response"
        )
        points: list[dict[str, Any]] = answer["points"]
        return points


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(entry: dict[str, Any]) -> dict[str, Any]:
    return {_camel(key): value for key, value in entry.items()}


def _plain_error(exc: PlainProtocolError) -> GraphQLError:
    return GraphQLError(str(exc), extensions={"code": exc.code})


class _Execution:
    """One query's reads: each update form is read once, so every field of one query sees the
    same snapshot unless a tick lands between two forms."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source
        self._updates: dict[str | None, dict[str, Any]] = {}

    def update(self, skill: str | None) -> dict[str, Any]:
        if skill not in self._updates:
            data = self.source.update(skill)
            # Before the first tick there is nothing to rank: empty lists, as a subscriber waits.
            self._updates[skill] = data if data is not None else {"top_skills": [], "anomalies": []}
        return self._updates[skill]

    def skill_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A top_skills entry in the schema's SkillMetrics form."""
        fields = _camel_keys(entry)
        fields["invocationCount24h"] = entry["invocation_count"]
        name = entry["skill_name"]
        # All-time completed is get_metrics' figure (the update carries only the rate); the
        # default resolver calls it only when the query selects it.
        fields["completedInvocations"] = lambda info: self._completed(name)
        return fields

    def _completed(self, skill: str) -> int:
        try:
            count: int = self.source.skill_metrics(skill)["completed_invocations"]
        except PlainProtocolError as exc:
            raise _plain_error(exc) from None
        return count


class _QueryRoot:
    """The root value: graphql-core's default resolver calls these with (info, **arguments)."""

    def __init__(self, execution: _Execution) -> None:
        self._x = execution

    def topSkills(self, info: Any, limit: int | None = 10) -> list[dict[str, Any]]:  # noqa: N802
        if limit is not None and limit < 0:
            raise GraphQLError("limit must be >= 0")
        entries = self._x.update(None)["top_skills"]
        return [self._x.skill_entry(e) for e in (entries if limit is None else entries[:limit])]

    def skill(self, info: Any, name: str) -> dict[str, Any] | None:
        entries = self._x.update(name)["top_skills"]
        return self._x.skill_entry(entries[0]) if entries else None

    def anomalies(self, info: Any, skill: str | None = None) -> list[dict[str, Any]]:
        return [_camel_keys(a) for a in self._x.update(skill)["anomalies"]]

    def history(
        self, info: Any, skill: str | None = None, window: int | None = 3600, step: int | None = 60
    ) -> list[dict[str, Any]]:
        if window is None or step is None:
            raise GraphQLError("window and step cannot be null")
        try:
            points = self._x.source.history(skill, window, step)
        except PlainProtocolError as exc:
            raise _plain_error(exc) from None
        return [_camel_keys(p) for p in points]


def execute_query(prepared: PreparedQuery, source: MetricsSource) -> dict[str, Any]:
    """Run a prepared query; the response as GraphQL formats it: `data`, and `errors` when a
    field failed (with its path and locations)."""
    result = execute_sync(
        graphql_schema(), prepared.document, root_value=_QueryRoot(_Execution(source)),
        variable_values=prepared.variables, operation_name=prepared.operation_name,
    )
    return dict(result.formatted)

