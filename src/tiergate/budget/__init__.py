"""Cost accounting, budgets and rate limits (issue 6).

    pricing.py   prices, pre-call maximum estimate, actual cost from usage
    windows.py   budget periods in the configured time zone (window ids, resets)
    counters.py  the counter interface every backend implements (reserve/settle, sliding windows)
    memory.py    in-process counters (one process; default)
    sql.py       counters in the database (several processes, no Redis)
    redis.py     counters in Redis, atomic Lua scripts (several replicas)
    manager.py   the admission rules: scopes, emergency mode, per-request share, alerts
"""
