"""A process that imports the heavy stack once and forks real `reasonlite` CLI runs on demand.

Why: under load a cold `reasonlite generate` start (torch + transformers + DuckDB imports) costs
~20 s; ten kill trials would cost minutes. A child forked from this process runs the very same
``warehouse.cli.main(argv)`` a shell would, in its own process, and dies by SIGKILL like any other
process. The zygote itself never opens DuckDB or starts threads before forking.

Protocol (one JSON object per line on stdin, one answer line on stdout):
  {"run": [argv...], "log": path, "env": {...}}  -> {"pid": n}   fork a child running
                                   `reasonlite argv...` with these environment variables set
  {"wait": pid}                    -> {"status": s}   s = exit code, or -signal if killed
"""

from __future__ import annotations

import json
import os
import signal
import sys


def _child(argv: list[str], log: str, env: dict[str, str]) -> None:
    os.environ.update(env)  # the test's isolated lake (REASONLITE_*), set before anything reads it
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdin.close()
    code = 1
    try:
        from warehouse.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


def serve() -> None:
    # The same imports `reasonlite generate` pays for at start; nothing here starts threads.
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401 (lazy in transformers)
    from transformers.models.llama import modeling_llama  # noqa: F401

    import generation.backends.transformers_backend  # noqa: F401
    import generation.runner  # noqa: F401
    import warehouse.cli  # noqa: F401

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if "run" in message:
            pid = os.fork()
            if pid == 0:
                _child(message["run"], message["log"], message.get("env") or {})
            print(json.dumps({"pid": pid}), flush=True)
        elif "wait" in message:
            _, status = os.waitpid(int(message["wait"]), 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(json.dumps({"status": code}), flush=True)


if __name__ == "__main__":
    serve()
