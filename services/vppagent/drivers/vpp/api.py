"""The one place that talks to VPP: a connection over its binary API socket, through vpp_papi.

vpp_papi builds its message functions from VPP's JSON API definitions (/usr/share/vpp/api/{core,plugins}/*.api.json,
installed with VPP) and speaks over the API socket (/run/vpp/api.sock, `socksvr` in VPP's startup.conf). Replies and
details come back as namedtuples whose fields are already Python values (ipaddress objects, MACAddress, IntFlag),
which is all the rest of the driver relies on."""

from __future__ import annotations

import os
from typing import Any, Protocol

from ...errors import DataplaneError
from .calls import Call

DEFAULT_API_DIR = "/usr/share/vpp/api"
DEFAULT_API_SOCKET = "/run/vpp/api.sock"
CLIENT_NAME = "multinet-agent"
READ_TIMEOUT_S = 5.0  # the CNI plugin gives the agent 5 s for a whole ADD; a hung VPP must fail, not block


class VppApi(Protocol):
    """Raw request/response: `call` returns the reply, `dump` the list of details. Retvals are not checked here."""

    def call(self, msg: str, fields: dict[str, object]) -> Any: ...

    def dump(self, msg: str, fields: dict[str, object]) -> list[Any]: ...

    def close(self) -> None: ...

    def alive(self) -> bool:
        """False once the connection broke (VPP restarted): the driver then connects again."""
        ...


class VppApiError(DataplaneError):
    def __init__(self, call: Call, retval: int) -> None:
        super().__init__(f"{call.what}: {call.msg} returned {retval}")
        self.call = call
        self.retval = retval


def run(api: VppApi, call: Call) -> Any:
    """Send one request; a retval outside `call.ok` raises."""
    reply = api.call(call.msg, dict(call.fields))
    retval = int(reply.retval)
    if retval not in call.ok:
        raise VppApiError(call, retval)
    return reply


def dump(api: VppApi, call: Call) -> list[Any]:
    return api.dump(call.msg, dict(call.fields))


class PapiConnection:
    """VppApi over vpp_papi's VPPApiClient."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._broken = False

    @classmethod
    def open(cls, api_dir: str = DEFAULT_API_DIR, socket_path: str = DEFAULT_API_SOCKET) -> PapiConnection:
        from vpp_papi import VPPApiClient  # imported here: the linux driver must not need vpp_papi

        if not os.path.isdir(api_dir):
            raise DataplaneError(f"VPP API definitions not found: {api_dir} (is VPP installed?)")
        try:
            client = VPPApiClient(apidir=api_dir, server_address=socket_path, read_timeout=READ_TIMEOUT_S)
            client.connect(CLIENT_NAME)
        except Exception as exc:  # papi raises bare Exception, VPPIOError, VPPRuntimeError, OSError...
            raise DataplaneError(f"cannot connect to VPP at {socket_path}: {exc}") from exc
        return cls(client)

    def _function(self, msg: str) -> Any:
        try:
            return getattr(self._client.api, msg)
        except AttributeError:
            raise DataplaneError(f"VPP does not know {msg} (plugin not loaded, or another VPP version)") from None

    def call(self, msg: str, fields: dict[str, object]) -> Any:
        try:
            return self._function(msg)(**fields)
        except DataplaneError:
            raise
        except Exception as exc:  # transport errors (VPPIOError on a dead socket, timeouts): reconnect next time
            self._broken = True
            raise DataplaneError(f"{msg}: {exc}") from exc

    def dump(self, msg: str, fields: dict[str, object]) -> list[Any]:
        try:
            result = self._function(msg)(**fields)
        except DataplaneError:
            raise
        except Exception as exc:
            self._broken = True
            raise DataplaneError(f"{msg}: {exc}") from exc
        # Streaming services ("stream" in the .api service block) return (reply, details); classic dumps a list.
        if isinstance(result, tuple):
            return list(result[1])
        return list(result)

    def alive(self) -> bool:
        return not self._broken

    def close(self) -> None:
        try:
            self._client.disconnect()
        except Exception:  # closing a connection that already broke must not fail the agent's shutdown
            return
