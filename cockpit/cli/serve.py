"""`cockpit serve CKPT`: an OpenAI-compatible endpoint for one checkpoint (the app: engine/serve.py).

The socket is bound here, before the model loads, so a port in use or a bad host is one clear line
and exit 2, and ``--port 0`` takes a free port (the line printed says which).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.ckpt import CKPT_ARGUMENT, resolve_checkpoint
from cockpit.cli.ckpt_sample import DEVICE_OPTION, DTYPE_OPTION, load_or_exit
from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    ckpt_ref: str = CKPT_ARGUMENT,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --allow-remote)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port, printed at start)."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Listen on a non-loopback address. There is no authentication: anyone who reaches the port "
        "can use the model (and the machine's time).",
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="The model id clients send (default: RUN:STEP, or the checkpoint's folder name)."
    ),
    dtype: str = DTYPE_OPTION,
    device: str = DEVICE_OPTION,
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Serve a checkpoint over HTTP with the OpenAI API: /v1/models, /v1/chat/completions, /v1/completions
    (streaming too).

    One generation runs at a time (the model is not thread-safe): further requests wait their turn.
    Listens on loopback only unless --allow-remote. Stop with Ctrl-C.
    """
    import socket

    if not is_loopback(host) and not allow_remote:
        fail(
            f"--host {host}: not a loopback address; the server has no authentication, so anyone who can reach "
            "it could use the model. Pass --allow-remote to listen there anyway, or use an SSH tunnel"
        )
    if not 0 <= port <= 65535:
        fail(f"--port {port}: not a port (0-65535)")
    run_dir, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        fail(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})")
    sock.listen(128)
    sock.set_inheritable(True)

    from engine.generation import GenerationError, resolve_device

    try:
        where = resolve_device(device)
    except GenerationError as exc:
        fail(str(exc))
    loaded = load_or_exit(ckpt, dtype, where)
    if model_name is None:
        model_name = f"{run_dir.name}:{loaded.step}" if run_dir is not None and loaded.step is not None else ckpt.name
    _run(loaded, model_name, sock, where)


def _run(loaded, model_name: str, sock, device: str) -> None:
    import uvicorn

    from engine.serve import create_app

    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    chat = "yes" if getattr(loaded.tokenizer, "chat_template", None) else "no (completions only)"
    typer.echo(
        f"serving {loaded.path} as {model_name!r} on http://{url_host}:{bound_port}/v1 ({device}; chat template: "
        f"{chat}; one generation at a time). Ctrl-C stops.",
    )
    config = uvicorn.Config(create_app(loaded, model_name), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl-C, then passes the signal on
        pass
    typer.echo("stopped")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
