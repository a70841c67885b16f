"""pgclaim: a PostgreSQL-native record queue.

The logic lives in SQL functions of the ``pgclaim`` schema; this package calls them.
"""
from .client import Claimed, QueueClient, QueueStats
from .errors import (
    InvalidArgument,
    NotHolder,
    PgclaimError,
    QueueNotEmpty,
    QueueNotFound,
    RecordNotFound,
    TransientError,
)
from .migrate import migrate

__all__ = [
    "Claimed",
    "InvalidArgument",
    "NotHolder",
    "PgclaimError",
    "QueueClient",
    "QueueNotEmpty",
    "QueueNotFound",
    "QueueStats",
    "RecordNotFound",
    "TransientError",
    "migrate",
]
