"""One CNI invocation in (environment + stdin), exit status and stdout out. Shared by the gRPC Cni service and
the local unix-socket transport of the `multinet` executable, so both behave identically."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry.trace import Status, StatusCode

from services.common.telemetry import tracer

from . import config, maintenance
from .env import parse_env
from .errors import CniFailure, Code
from .handler import CniHandler
from .result import dumps, error_result, version_result

log = logging.getLogger("multinet.netmgr.cni")
_tracer = tracer("multinet.netmgr.cni")


class Dispatcher:
    def __init__(self, handler: CniHandler) -> None:
        self.handler = handler

    async def invoke(self, environ: Mapping[str, str], stdin: bytes) -> tuple[int, bytes, CniFailure | None]:
        command = environ.get("CNI_COMMAND", "")
        with _tracer.start_as_current_span(f"cni.{command.lower() or 'unknown'}") as span:
            version = config.LATEST
            try:
                env = parse_env(environ)
                if env.command == "VERSION":
                    return 0, dumps(version_result(_version_for_version_command(stdin))), None
                conf = config.parse(stdin, env.command)
                version = conf.cni_version
                if env.command == "ADD":
                    return 0, dumps(await self.handler.add(env, conf)), None
                if env.command == "DEL":
                    await self.handler.delete(env, conf)
                elif env.command == "CHECK":
                    await maintenance.check(self.handler, env, conf)
                elif env.command == "STATUS":
                    await maintenance.status(self.handler, env, conf)
                elif env.command == "GC":
                    await maintenance.gc(self.handler, env, conf)
                return 0, b"", None
            except CniFailure as failure:
                span.set_status(Status(StatusCode.ERROR, failure.msg))
                span.set_attribute("cni.error_code", int(failure.code))
                log.warning(
                    "cni failed",
                    extra={
                        "command": command,
                        "code": int(failure.code),
                        "error": failure.msg,
                        "container_id": environ.get("CNI_CONTAINERID", ""),
                    },
                )
                return 1, dumps(error_result(version, failure)), failure
            except Exception as exc:  # a bug must still produce a CNI error, never a hung or silent runtime
                log.exception("cni internal error", extra={"command": command})
                internal = CniFailure(Code.DATAPLANE_FAILURE, f"internal error: {exc}")
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                return 1, dumps(error_result(version, internal)), internal


def _version_for_version_command(stdin: bytes) -> str | None:
    """VERSION answers in the config's version when one is given and supported, else the latest."""
    if not stdin.strip():
        return None
    try:
        raw = config.decode(stdin)
        return config.requested_version(raw)
    except CniFailure:
        return None
