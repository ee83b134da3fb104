"""What the C core's threads report, as Python names: the event kinds and log topics are the
C enums exported by `_core`, and each topic has its logger."""

from __future__ import annotations

import enum
import logging

from session_buddy.realtime import _core
from session_buddy.realtime._options import LOGGER_NAME, AnyLogger

__all__ = ["AUTH_LOGGER_NAME", "SERVER_LOGGER_NAME", "EventKind", "LogTopic", "topic_logger"]


class EventKind(enum.IntEnum):
    """The kind of an event from ServerBase.take_events()."""

    LOG = _core.EV_LOG
    SNAPSHOT = _core.EV_SNAPSHOT
    TICK_DONE = _core.EV_TICK_DONE
    STOPPED = _core.EV_STOPPED
    ANOMALIES = _core.EV_ANOMALIES
    GQL_OPERATION = _core.EV_GQL_OPERATION  # value: connection id; text: {"id", "user", "message"}
    GQL_HTTP = _core.EV_GQL_HTTP  # value: request id; text: {"method", "args", "body", ...}


class LogTopic(enum.IntEnum):
    """Which logger a log event is for (it travels as the event's value)."""

    SERVER = _core.LOG_TOPIC_SERVER
    AUTH = _core.LOG_TOPIC_AUTH


# With the default logger, lines go to the two loggers session-buddy's pure-Python server used
# (its modules' names), both children of LOGGER_NAME: handlers and levels set on LOGGER_NAME
# keep working, and each line is still one record, so nothing prints twice.
SERVER_LOGGER_NAME = LOGGER_NAME + ".websocket_server"
AUTH_LOGGER_NAME = LOGGER_NAME + ".auth"
_TOPIC_LOGGERS = {LogTopic.SERVER: SERVER_LOGGER_NAME, LogTopic.AUTH: AUTH_LOGGER_NAME}


def topic_logger(logger: AnyLogger, topic: int) -> AnyLogger:
    """Where a line of this topic goes: a `logger=` given gets everything; the default
    `session_buddy.realtime` hands each topic to its session-buddy name below it."""
    if logger is logging.getLogger(LOGGER_NAME):
        return logging.getLogger(_TOPIC_LOGGERS.get(topic, SERVER_LOGGER_NAME))  # type: ignore[call-overload]
    return logger


def min_log_level(logger: AnyLogger) -> int:
    """The lowest level any topic's logger takes: the C side drops lines below it."""
    levels = [
        lg.getEffectiveLevel()
        for lg in (topic_logger(logger, LogTopic.SERVER), topic_logger(logger, LogTopic.AUTH))
        if callable(getattr(lg, "getEffectiveLevel", None))
    ]
    return min(levels) if len(levels) == 2 else 0
