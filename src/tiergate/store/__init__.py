"""tiergate's database: engines and URLs (`db`), the schema (`models`), Alembic migrations
(`migrate`, `migrations/`) and the batched request log (`request_log`).

Typical start-up::

    run_migrations(url)                       # once, in the parent, before workers fork
    store = await Store.open(url, migrate=False)
    writer = RequestLogWriter(store); writer.start()
    ...  writer.submit(RequestLogRecord(...))  # per request, synchronous
    await writer.close(); await store.close()  # on shutdown, in this order
"""

from tiergate.store.db import DEFAULT_URL, Store, make_engine, normalize_url
from tiergate.store.migrate import run_migrations
from tiergate.store.request_log import RequestLogRecord, RequestLogWriter

__all__ = [
    "DEFAULT_URL",
    "RequestLogRecord",
    "RequestLogWriter",
    "Store",
    "make_engine",
    "normalize_url",
    "run_migrations",
]
