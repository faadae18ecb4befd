"""The local transport of the `multinet` executable: a root-only unix socket carrying one invocation per
connection. Request: "KEY=VALUE\\0" for each CNI_* variable, an empty entry, then stdin. Reply: the exit status
in ASCII, a newline, then stdout. The executable stays stdlib-only and starts in a few milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from services.common import sockets

from .dispatch import Dispatcher

log = logging.getLogger("multinet.netmgr.cni.local")
MAX_REQUEST = 8 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0


def decode_request(data: bytes) -> tuple[dict[str, str], bytes]:
    env: dict[str, str] = {}
    offset = 0
    while True:
        end = data.index(b"\0", offset)
        entry = data[offset:end]
        offset = end + 1
        if not entry:
            return env, data[offset:]
        key, _, value = entry.decode(errors="replace").partition("=")
        env[key] = value


async def _answer_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Deliver an answer sent before the request was read whole: half-close, then read (and drop) the rest for a
    while — closing with unread data would reset the connection and the answer would be lost."""
    await writer.drain()
    writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while await reader.read(65536):
                pass


class LocalTransport:
    def __init__(self, dispatcher: Dispatcher, path: Path) -> None:
        self._dispatcher = dispatcher
        self._path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        sockets.claim(self._path)
        # the directory is 0700, so the moment before chmod exposes nothing (a umask change would be process-wide)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._path), limit=MAX_REQUEST)
        sockets.restrict(self._path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._path.is_socket():
            self._path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = bytearray()
            while chunk := await reader.read(65536):
                data += chunk
                if len(data) > MAX_REQUEST:
                    writer.write(b'1\n{"cniVersion":"1.1.0","code":6,"msg":"network configuration larger than 8 MiB"}')
                    await _answer_early(reader, writer)
                    return
            try:
                env, stdin = decode_request(bytes(data))
            except ValueError:
                writer.write(b'1\n{"cniVersion":"1.1.0","code":6,"msg":"malformed request from the multinet plugin"}')
                return
            status, stdout, _failure = await self._dispatcher.invoke(env, stdin)
            writer.write(f"{status}\n".encode() + stdout)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.warning("cni client went away", extra={"error": str(exc)})
        except Exception:  # never leave the plugin without an answer
            log.exception("cni local transport failed")
            writer.write(b'1\n{"cniVersion":"1.1.0","code":100,"msg":"internal error in multinet, see its log"}')
        finally:
            writer.close()
