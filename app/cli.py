"""The ``pacekeeper`` command: one entry point for every process.

Each sub-command imports its module lazily, so ``pacekeeper paper`` does not load the
receiver and ``pacekeeper worker`` does not load FastAPI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import get_settings

    settings = get_settings()
    settings.check_webhook_secret()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=settings.log_level.lower(),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        proxy_headers=bool(settings.trusted_proxies),
        access_log=False,
        log_config=None,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    """Refuse, before anything starts, the configuration the receiver would refuse: compose
    runs it once and starts nothing while it fails (exit 78), where a receiver refusing on
    its own would be restarted for ever while ``docker compose up -d`` reported success."""
    from app.accounts import configured_accounts
    from app.config import get_settings

    settings = get_settings()
    settings.check_webhook_secret()
    configured_accounts(settings)  # a named account's missing key names its variable
    print("pacekeeper check: configuration ok")
    return 0


def _paper(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import get_settings
    from paper.settings import PaperSettings

    paper = PaperSettings()  # refused here, before uvicorn starts, when it does not validate
    uvicorn.run(
        "paper.app:create_app",
        factory=True,
        host=args.host or paper.paper_host,
        port=args.port or paper.paper_port,
        log_level=get_settings().log_level.lower(),
        access_log=False,
        log_config=None,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from worker.main import run_worker

    return run_worker(burst=args.burst)


def _monitor(args: argparse.Namespace) -> int:
    from worker.cron import run_cron

    return run_cron()


def _db(args: argparse.Namespace) -> int:
    from app import migrate

    if args.db_command == "upgrade":
        migrate.upgrade(revision=args.revision)
    elif args.db_command == "downgrade":
        migrate.downgrade(revision=args.revision)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from app.devstack import run_dev

    return run_dev(quiet=args.quiet)


def _send(args: argparse.Namespace) -> int:
    from app.sender import send_main

    return send_main(args)


def _status(args: argparse.Namespace) -> int:
    from app.status import status_main

    return status_main(args)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none worth showing (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacekeeper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_, description=help_[0].upper() + help_[1:] + ".",
            formatter_class=_Help,
        )  # fmt: skip
        p.set_defaults(func=func)
        return p

    p = add("api", _api, "serve the webhook receiver, health, metrics and admin API")
    p.add_argument("--host", help="address to listen on (default: PACEKEEPER_API_HOST)")
    p.add_argument("--port", type=int, help="port (default: PACEKEEPER_API_PORT)")
    add("check", _check, "check the configuration the receiver needs (the webhook secret)")
    p = add("paper", _paper, "serve the Binance-compatible paper exchange")
    p.add_argument("--host", help="address to listen on (default: PACEKEEPER_PAPER_HOST)")
    p.add_argument("--port", type=int, help="port (default: PACEKEEPER_PAPER_PORT)")
    p = add("worker", _worker, "run an RQ worker for signal jobs")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    add("monitor", _monitor, "run the rq cron process: algo monitor, intake sweeper, reconciler")
    p = add("db", _db, "database schema")
    p.add_argument("db_command", choices=["upgrade", "downgrade"], help="direction")
    p.add_argument("revision", nargs="?", default=None,
                   help="target revision (upgrade: head; downgrade: -1, one step)")  # fmt: skip
    p = add("dev", _dev, "run paper exchange, receiver, worker and monitor on this machine")
    p.add_argument("--quiet", action="store_true", help="the parts log warnings and errors only")
    p = add("send", _send, "post a signal (JSON) from a file or standard input")
    p.add_argument("file", help="path to a JSON signal, or - for standard input")
    p.add_argument("--url", help="receiver base URL (default: the configured API host/port)")
    p = add("status", _status, "print working algos with their pace and execution quality")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument(
        "--recent", type=int, default=0, metavar="HOURS", help="also algos ended in HOURS"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command; a configuration error exits with ``CONFIG_ERROR`` (78), which
    ``pacekeeper dev`` and a supervisor should not answer by starting it again."""
    from pydantic import ValidationError

    from app.config import ConfigError
    from app.outages import CONFIG_ERROR

    args = build_parser().parse_args(argv)
    try:
        if args.command not in ("send",):
            from app.config import get_settings
            from app.logging import configure_logging

            configure_logging(get_settings())
        if args.command == "db" and args.revision is None:
            args.revision = "head" if args.db_command == "upgrade" else "-1"
        result: int = args.func(args)
    except (ConfigError, ValidationError) as exc:
        print(f"pacekeeper {args.command}: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    except Exception as exc:  # a fatal error: one readable line, the traceback at DEBUG
        import logging

        logging.getLogger("pacekeeper").debug("pacekeeper %s failed", args.command, exc_info=True)
        print(f"pacekeeper {args.command}: {fatal_line(exc)}", file=sys.stderr)
        return 1
    return result


def fatal_line(exc: BaseException) -> str:
    """What a person at a terminal needs from a fatal error: its kind, its first line, and
    the way out when there is a usual one."""
    first = (str(exc).strip().splitlines() or [""])[0]
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if "no such table" in first or "UndefinedTable" in first or "does not exist" in first:
        line += " (the database has no schema: run `pacekeeper db upgrade`)"
    elif type(exc).__module__.startswith(("redis", "sqlalchemy")) and "onnect" in first:
        line += " (is it running? see PACEKEEPER_REDIS_URL / PACEKEEPER_DATABASE_URL)"
    return line


if __name__ == "__main__":
    sys.exit(main())
