"""RQ entry points: jobs, cron registration and per-process resources."""
