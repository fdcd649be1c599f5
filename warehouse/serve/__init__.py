"""`reasonlite serve`: a local, read-only web app over the marts and the lake.

Problem list (filters, paging) -> problem page (statement, dataset label, vote tally, label and
its source, every sample with answer, verdict, reject reason, tokens, reasoning and final text),
run pages, per-problem evaluation results. Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import errno
import socket
import sys

from warehouse.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="local read-only web app: problems, vote tallies, samples and verdicts, runs",
        description="Browse the lake and the marts in a web browser: problem list with filters, each "
        "problem's vote tally, label and samples with their verdicts, runs and evaluation results. "
        "Read-only; binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this "
                   "machine only; 0.0.0.0 exposes the data to the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.set_defaults(handler=_serve)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind before starting the server, so a busy port is one clear line, not a uvicorn traceback."""
    if not 0 < port < 65536:
        raise UserError(f"--port: {port} is not a TCP port (1-65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise UserError(f"--host: cannot resolve {host!r} ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop works
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"{host}:{port} is already in use (another `reasonlite serve`?); "
                            "stop it or choose another --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return sock


def _serve(args) -> int:
    import uvicorn

    from warehouse import lake
    from warehouse.serve.app import create_app
    from warehouse.serve.data import Busy

    sock = listening_socket(args.host, args.port)
    app = create_app()
    try:
        app.state.index.cursor().close()  # build the problem index now, not on the first click
    except Busy as err:
        print(f"serve: the marts are being rebuilt ({err}); the index is built on the first request",
              file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {lake.lake_root()} (marts {lake.database_path()}) read-only at http://{shown}:{args.port}/ "
          "- Ctrl-C stops", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"serve: listening on {args.host}: anyone who can reach this machine can read the lake",
              file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    server.run(sockets=[sock])
    return 0
