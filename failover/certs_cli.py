"""``failover certs``: certificates for development and tests (failover/devcerts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

certs_app = typer.Typer(no_args_is_help=True, help="Certificates for mTLS (a local CA for development).")


def _names(value: str, option: str, role: str = "operator") -> list[str]:
    from coordinator.authz import parse_identity

    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        if parse_identity(f"{role}/{n}") is None:
            shape = "[SITE/]HOST, each " if role == "sidecar" else ""
            raise typer.BadParameter(
                f"{n!r}: {shape}letters, digits, '.', '_' and '-' only", param_hint=option
            )
    return names


@certs_app.command("dev")
def dev(
    directory: Annotated[Path, typer.Argument(help="Where to write ca.pem and <role>-<name>.pem/.key.")],
    replicas: Annotated[str, typer.Option("--replicas", help="Coordinator replica ids.")] = "c1,c2,c3",
    hosts: Annotated[
        str,
        typer.Option("--hosts", help="Sidecar host ids; SITE/HOST also names the host's site."),
    ] = "host-a,host-b",
    operators: Annotated[str, typer.Option("--operators", help="Operator names.")] = "operator",
    viewers: Annotated[str, typer.Option("--viewers", help="Viewer names.")] = "viewer",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing ca.pem.")] = False,
) -> None:
    """A local CA and a certificate per identity (SAN URI spiffe://failover/<role>/<name>).

    For development and tests only; keys are written with mode 0600 and never printed.
    """
    from failover.devcerts import write_dev_tree

    if (directory / "ca.pem").exists() and not force:
        typer.echo(f"{directory / 'ca.pem'} exists: pass --force to replace the CA", err=True)
        raise typer.Exit(2)
    try:
        written = write_dev_tree(
            directory,
            replicas=_names(replicas, "--replicas"),
            hosts=_names(hosts, "--hosts", "sidecar"),
            operators=_names(operators, "--operators"),
            viewers=_names(viewers, "--viewers"),
        )
    except OSError as exc:
        typer.echo(f"cannot write to {directory}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(str(path))
