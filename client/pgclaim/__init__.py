"""pgclaim: a PostgreSQL-native record queue.

The logic lives in SQL functions of the ``pgclaim`` schema; this package calls them:
``QueueClient`` (one method per function), ``Worker`` and ``MultiWorker`` (the worker loop),
``AsyncQueueClient`` and ``AsyncWorker`` (the same for asyncio),
``RetryPolicy`` (transient failures), ``instance_id()`` and ``migrate()``. ``__version__`` is
the package's version.
"""
from ._version import package_version
from .aio import AsyncQueueClient
from .aio_worker import AsyncWorker
from .client import (
    Claimed,
    DeadLetter,
    Item,
    Latency,
    Metric,
    QueueClient,
    QueueStats,
    Schedule,
    StuckRecord,
    WorkerStatus,
)
from .errors import (
    InstallRefused,
    InvalidArgument,
    LeaseNotHeld,
    NotHolder,
    OutcomeUnknown,
    PermissionDenied,
    PgclaimError,
    QueueNotEmpty,
    QueueNotFound,
    RecordNotFound,
    SchemaMismatch,
    SchemaMissing,
    TransientError,
    WorkerIdTaken,
)
from .instance import instance_id
from .migrate import migrate
from .multi import MultiWorker
from .retry import RetryPolicy
from .worker import Fatal, Retry, Worker, WorkerStats

#: the version of the installed pgclaim distribution
__version__ = package_version()

__all__ = [
    "AsyncQueueClient",
    "AsyncWorker",
    "Claimed",
    "DeadLetter",
    "Fatal",
    "InstallRefused",
    "InvalidArgument",
    "Item",
    "Latency",
    "LeaseNotHeld",
    "Metric",
    "MultiWorker",
    "NotHolder",
    "OutcomeUnknown",
    "PermissionDenied",
    "PgclaimError",
    "QueueClient",
    "QueueNotEmpty",
    "QueueNotFound",
    "QueueStats",
    "RecordNotFound",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "SchemaMismatch",
    "SchemaMissing",
    "StuckRecord",
    "TransientError",
    "Worker",
    "WorkerIdTaken",
    "WorkerStats",
    "WorkerStatus",
    "__version__",
    "instance_id",
    "migrate",
]
