"""The ``stratus`` command: ``serve`` (every role in one process), ``api`` and ``worker`` (the
roles on their own, sharing PostgreSQL and Redis), ``keys create|list|revoke``,
``credits add|set|show``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stratus._logs import uvicorn_config
from stratus.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from stratus.accounts import Accounts
    from stratus.runtime import Role

T = TypeVar("T")
KEEP_ALIVE = 75  # seconds an idle client connection is kept open


def _config(args: argparse.Namespace, **overrides: Any) -> Config:
    flags = {"data_dir": args.data_dir, **overrides}
    return load_config(args.config, overrides=flags)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML configuration file")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the database lives (default ./.stratus)")


def _serve(args: argparse.Namespace) -> int:
    return _run(args, "all")


def _api(args: argparse.Namespace) -> int:
    return _run(args, "api")


def _worker(args: argparse.Namespace) -> int:
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    return _run(args, "worker", models or None, args.max_idle)


def _autoscale(args: argparse.Namespace) -> int:
    from stratus.autoscale import Limits, Supervisor

    config = _config(args)
    if not (config.database.url or "").startswith(("postgres://", "postgresql://")):
        raise ConfigError("`stratus autoscale` starts workers that share a database: set "
                          "[database] url (or STRATUS_DATABASE_URL) to a postgresql:// URL")
    if not 0 <= args.min <= args.max or args.max < 1:
        raise ConfigError(f"--min {args.min} and --max {args.max}: need 0 <= min <= max, "
                          "max >= 1")
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()] or None
    limits = Limits(min=args.min, max=args.max, jobs_per_worker=args.jobs_per_worker,
                    max_idle=args.max_idle, interval=args.interval)
    passed = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    asyncio.run(Supervisor(config, limits, config_path=str(args.config) if args.config else None,
                           models=models, worker_args=passed + args.worker_args).run())
    return 0


def _run(args: argparse.Namespace, role: Role, serve: list[str] | None = None,
         max_idle: float | None = None) -> int:
    import uvicorn

    from stratus.api import create_app
    from stratus.runtime import Runtime

    port = args.port if args.port is not None or role != "worker" else args.default_port
    config = _config(args, host=args.host, port=port,
                     result_ttl=getattr(args, "result_ttl", None))
    runtime = Runtime.from_config(config, role, serve, max_idle)
    if role != "worker":
        asyncio.run(_bootstrap_key(config))
    app = create_app(runtime)

    class Server(uvicorn.Server):
        """On the first SIGTERM/SIGINT the server drains while still listening (new
        submits get 503, ``/ready`` 503) until its running jobs end or the grace period
        passes; then it closes the listener, gives open streams what is left of the grace
        (at least 1 s) and hands unfinished jobs back to the queue. A second signal skips
        what is left: streams are cut and jobs handed back at once."""

        drain_task: asyncio.Task[None] | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                runtime.begin_drain()
                super().handle_exit(sig, frame)
                return
            loop.call_soon_threadsafe(self._signalled, sig, frame)

        def _signalled(self, sig: int, frame: Any) -> None:
            if self.drain_task is None:
                self.drain_task = asyncio.create_task(self._drain(sig, frame))
                return
            runtime.end_grace()  # a second signal: no more waiting
            self.drain_task.cancel()
            self.config.timeout_graceful_shutdown = 0.1
            super().handle_exit(sig, frame)

        async def _drain(self, sig: int, frame: Any) -> None:
            try:
                await runtime.drain()
            finally:
                if not self.should_exit:
                    grace = runtime.grace_left()
                    self.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
                    super().handle_exit(sig, frame)

    logging_config = uvicorn_config(args.log_format, args.log_level)
    server = Server(uvicorn.Config(
        app, host=config.server.host, port=config.server.port, log_level=args.log_level,
        **({"log_config": logging_config} if logging_config is not None else {}),
        # set again once the drain is over: what is left of the grace, at least 1 s
        timeout_graceful_shutdown=max(1, math.ceil(config.server.shutdown_grace)),
        # longer than clients keep an idle connection (httpx: 5 s, uvicorn's own default), so
        # the server never closes one just as a client sends on it
        timeout_keep_alive=KEEP_ALIVE,
        access_log=args.access_log and logging_config is None,
    ))
    runtime.on_idle_exit = lambda: setattr(server, "should_exit", True)
    server.run()
    return 0


async def _bootstrap_key(config: Config) -> None:
    """On an empty store, create the first key and print it once."""
    from stratus.accounts import KeyOptions

    async def create(accounts: Accounts) -> tuple[Any, str] | None:
        if await accounts.has_keys():
            return None
        value = os.environ.get("STRATUS_BOOTSTRAP_KEY") or None
        return await accounts.create_key("default", "bootstrap", value,
                                         KeyOptions(admin=True))

    made = await _with_accounts(config, create)
    if made is None:
        return
    key, secret = made
    host = config.server.host if config.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    model = config.models[0].aliases[0] if config.models[0].aliases else config.models[0].slug
    print(
        f"Created the first API key (an admin key of account 'default', id {key.id}). "
        "It is shown only once:\n"
        f"\n    {secret}\n\n"
        "Try it:\n"
        f"    curl -s http://{host}:{config.server.port}/v1/{model} \\\n"
        f"      -H 'x-api-key: {secret}' -H 'content-type: application/json' \\\n"
        "      -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello there\"}]}'\n",
        flush=True,
    )


async def _with_accounts(config: Config, call: Callable[[Accounts], Awaitable[T]]) -> T:
    """``call`` on the accounts of the configured database (the server's, if it runs
    beside), opened for the call and closed after."""
    from stratus import backends

    database = backends.database(config)
    await database.open()
    try:
        return await call(database.accounts)
    finally:
        await database.close()


def _on_accounts(args: argparse.Namespace, call: Callable[[Accounts], Awaitable[T]]) -> T:
    return asyncio.run(_with_accounts(_config(args), call))


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return seconds


def _usd(value: str) -> float:
    from stratus.accounts import MAX_USD

    try:
        amount = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount in USD") from None
    if not math.isfinite(amount) or abs(amount) > MAX_USD:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an amount in USD from -{MAX_USD} to {MAX_USD}")
    return amount


def _keys_create(args: argparse.Namespace) -> int:
    from stratus.accounts import KeyOptions, to_nano

    options = KeyOptions(
        admin=args.admin,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip())
        if args.models else None,
        requests_per_minute=args.rpm, tokens_per_minute=args.tpm)
    if options.models is not None:
        known = _config(args).models
        names = {name for m in known for name in (m.slug, *m.aliases)}
        unknown = [m for m in options.models if m not in names]
        if unknown:
            print(f"stratus: unknown model {unknown[0]!r}: configured models are "
                  f"{', '.join(sorted(names))}", file=sys.stderr)
            return 2
    credits = None if args.credits is None else to_nano(args.credits)
    key, secret = _on_accounts(args, lambda accounts: accounts.create_key(
        args.account, args.name or "", None, options, credits))
    print(f"created key {key.id} for account {key.account_name!r}; "
          "the key is shown only once:", file=sys.stderr)
    print(secret)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    keys = _on_accounts(args, lambda accounts: accounts.list_keys())
    print(f"{'ID':22} {'ACCOUNT':16} {'KEY':20} {'NAME':14} {'CREATED':20} {'STATUS':8} "
          "SCOPE")
    for key in keys:
        created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        state = "revoked" if key.revoked_at else "active"
        opts = key.options
        scope = ["admin"] if opts.admin else []
        if opts.models is not None:
            scope.append("models=" + ",".join(opts.models))
        if opts.requests_per_minute:
            scope.append(f"rpm={opts.requests_per_minute}")
        if opts.tokens_per_minute:
            scope.append(f"tpm={opts.tokens_per_minute}")
        print(f"{key.id:22} {key.account_name:16} {key.prefix:20} {key.name:14} "
              f"{created:20} {state:8} {' '.join(scope) or 'all models'}")
    return 0


def _credits_line(account: Any) -> str:
    from stratus.accounts import to_usd

    if account.balance is None:
        return f"{account.name}: unlimited (reserved ${to_usd(account.reserved):.6f})"
    return (f"{account.name}: ${to_usd(account.balance):.6f} "
            f"(reserved ${to_usd(account.reserved):.6f})")


def _credits_add(args: argparse.Namespace) -> int:
    from stratus.accounts import to_nano

    account = _on_accounts(args, lambda accounts: accounts.add_credits(
        args.account, to_nano(args.amount), args.note))
    print(_credits_line(account))
    return 0


def _credits_set(args: argparse.Namespace) -> int:
    from stratus.accounts import to_nano

    balance = None if args.balance == "unlimited" else to_nano(_usd(args.balance))
    account = _on_accounts(args, lambda accounts: accounts.set_credits(
        args.account, balance, args.note))
    print(_credits_line(account))
    return 0


def _credits_show(args: argparse.Namespace) -> int:
    if args.account:
        found = [_on_accounts(args, lambda accounts: accounts.account(args.account))]
    else:
        found = _on_accounts(args, lambda accounts: accounts.list_accounts())
    for account in found:
        print(_credits_line(account))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    key = _on_accounts(args, lambda accounts: accounts.revoke_key(args.key_id))
    print(f"revoked key {key.id} ({key.prefix}) of account {key.account_name!r}")
    return 0


def _add_server(parser: argparse.ArgumentParser, port: int) -> None:
    _add_common(parser)
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help=f"port (default {port})")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one JSON object a line, with one line per request "
                             "(request id, key id, surface, model, status, latency, tokens, "
                             "cost)")
    parser.set_defaults(default_port=port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API, worker and engines in one process")
    _add_server(serve, 8000)
    serve.add_argument("--result-ttl", type=float, default=None,
                       help="seconds results are kept (default 3600)")
    serve.set_defaults(func=_serve)
    api = sub.add_parser("api", help="run an API node: HTTP and admission, no engines "
                         "(jobs run on `stratus worker` processes sharing its database)")
    _add_server(api, 8000)
    api.set_defaults(func=_api)
    worker = sub.add_parser("worker", help="run a worker: engines and jobs for --models; "
                            "HTTP only for /health and /ready")
    _add_server(worker, 8001)
    worker.add_argument("--models", default=None,
                        help="comma-separated models (slugs or aliases) to serve; "
                        "default: all configured")
    worker.add_argument("--max-idle", type=_seconds, default=None, metavar="SECONDS",
                        help="stop (exit 0) after this long with no job run and no model "
                        "loaded (scale to zero); default: never")
    worker.set_defaults(func=_worker)
    scale = sub.add_parser(
        "autoscale", help="start local `stratus worker` processes as the queue calls for "
        "them, between --min and --max; those beyond --min exit after --max-idle")
    _add_common(scale)
    scale.add_argument("--min", type=int, default=0, help="workers always running (default 0)")
    scale.add_argument("--max", type=int, default=4, help="workers at most (default 4)")
    scale.add_argument("--max-idle", type=_seconds, default=300.0, metavar="SECONDS",
                       help="a worker beyond --min exits after this long with nothing to do "
                       "(default 300)")
    scale.add_argument("--jobs-per-worker", type=int, default=16,
                       help="waiting jobs that call for one more worker (default 16)")
    scale.add_argument("--interval", type=_seconds, default=2.0, metavar="SECONDS",
                       help="seconds between looks at the queue (default 2)")
    scale.add_argument("--models", default=None,
                       help="comma-separated models the workers serve (default: all)")
    scale.add_argument("worker_args", nargs="*", metavar="-- WORKER ARGS",
                       help="more arguments for each `stratus worker`, after --")
    scale.set_defaults(func=_autoscale)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (prints it once)")
    _add_common(create)
    create.add_argument("--account", default="default",
                        help="account the key belongs to (created if new)")
    create.add_argument("--name", default="", help="a label for the key")
    create.add_argument("--admin", action="store_true",
                        help="the key may use the admin routes (/v1/admin/...)")
    create.add_argument("--models", default=None,
                        help="comma-separated models (slugs or aliases) the key may use; "
                        "default: all")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute")
    create.add_argument("--tpm", type=int, default=None,
                        help="tokens per minute (input + max_tokens of each request)")
    create.add_argument("--credits", type=_usd, default=None,
                        help="a new account's balance in USD (default: unlimited)")
    create.set_defaults(func=_keys_create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    _add_common(listing)
    listing.set_defaults(func=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    _add_common(revoke)
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys_revoke)

    credits = sub.add_parser("credits", help="manage account credits (USD)")
    credits_sub = credits.add_subparsers(dest="credits_command", required=True)
    add = credits_sub.add_parser("add", help="add credits (a negative amount takes them)")
    _add_common(add)
    add.add_argument("account")
    add.add_argument("amount", type=_usd, help="USD")
    add.add_argument("--note", default="", help="why, for the ledger")
    add.set_defaults(func=_credits_add)
    set_ = credits_sub.add_parser("set", help="set the balance, or make it unlimited")
    _add_common(set_)
    set_.add_argument("account")
    set_.add_argument("balance", help="USD, or 'unlimited'")
    set_.add_argument("--note", default="", help="why, for the ledger")
    set_.set_defaults(func=_credits_set)
    show = credits_sub.add_parser("show", help="balances of one account or all")
    _add_common(show)
    show.add_argument("account", nargs="?", default=None)
    show.set_defaults(func=_credits_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    from stratus.errors import ServiceError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ServiceError, argparse.ArgumentTypeError) as exc:
        print(f"stratus: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
