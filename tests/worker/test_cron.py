"""The cron process enqueues JSON jobs that the JSON SimpleWorker runs."""

import redis

from app.config import Settings
from tests.worker.jobfuncs import record
from worker.cron import JsonCronScheduler, periodic_jobs
from worker.main import build_worker


def test_cron_job_is_runnable_by_the_json_worker(
    settings: Settings, redis_conn: redis.Redis, redis_url: str, queue_name: str
) -> None:
    # Under the queue's name, so the queue_name fixture deletes it whatever the outcome.
    key = f"pacekeeper:test:{queue_name}:ran"
    scheduler = JsonCronScheduler(connection=redis_conn)
    scheduler.register(record, queue_name, interval=60, kwargs={"redis_url": redis_url, "key": key})
    assert [j.func_name for j in scheduler.enqueue_jobs()] == ["tests.worker.jobfuncs.record"]
    # Not due again until its interval has passed.
    assert scheduler.enqueue_jobs() == []

    worker = build_worker(settings, redis_conn)
    assert worker.work(burst=True)
    assert int(redis_conn.get(key) or 0) == 1


def test_monitor_interval_comes_from_settings() -> None:
    settings = Settings(_env_file=None, monitor_interval=2, sweep_interval=7)
    jobs = dict(periodic_jobs(settings))
    assert jobs["worker.jobs.monitor_algos"] == 2
    assert jobs["worker.jobs.sweep_intake"] == 7


def test_periodic_jobs_go_to_the_front_of_a_backlog(
    redis_conn: redis.Redis, redis_url: str, queue_name: str
) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue(queue_name, connection=redis_conn, serializer=JSONSerializer)
    backlog = [queue.enqueue_call("worker.jobs.process_signal", args=(f"s{n}",)) for n in range(3)]
    scheduler = JsonCronScheduler(connection=redis_conn)
    scheduler.register(record, queue_name, interval=60, kwargs={"redis_url": redis_url, "key": "k"})
    assert len(scheduler.enqueue_jobs()) == 1
    # The monitor cycle runs as soon as a worker is free, not after every queued signal.
    first, *rest = queue.jobs
    assert first.func_name == "tests.worker.jobfuncs.record"
    assert [job.id for job in rest] == [job.id for job in backlog]
    for job in queue.jobs:
        job.delete()
