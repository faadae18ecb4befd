"""multinet: the CNI plugin executable. A thin shim: it forwards the CNI_* environment and stdin untouched to
netmgr's local socket and prints what comes back, so it starts in a few milliseconds (run as `python -IS`,
importing nothing beyond the built-in _socket). Parsing and validation happen in netmgr.

VERSION is answered here, so runtimes can probe the plugin while multinet is down.
Socket: $MULTINET_CNI_SOCKET, else the path in the file `multinet.socket` next to this executable (written by
`multinetctl install-cni`), else /run/multinet/cni.sock. Never from the network configuration: parts of it come
from pod annotations (Multus copies `cni-args` into `args`), and a pod must not choose where root talks to."""

import _socket
import os
import sys

VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_SOCKET = "/run/multinet/cni.sock"


def string_field(data, key):
    """The string value of the first `"key": "value"` in raw JSON, without a JSON parser (values we look for
    are paths and versions: no escapes). Same rule as the native build: whitespace, a colon, whitespace, a quote."""
    at = data.find(b'"' + key + b'"')
    if at < 0:
        return None
    rest = data[at + len(key) + 2 :].lstrip(b" \t\r\n")
    if not rest.startswith(b":"):
        return None
    rest = rest[1:].lstrip(b" \t\r\n")
    end = rest.find(b'"', 1)
    if not rest.startswith(b'"') or end < 0:
        return None
    return rest[1:end].decode()


def installed_socket():
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "multinet.socket"), "rb") as f:
            return f.readline().strip().decode() or None
    except OSError:
        return None


def reply(status, text):
    os.write(1, text.encode() if isinstance(text, str) else text)
    sys.exit(status)


def error(code, msg, version):
    msg = msg.replace("\\", "\\\\").replace('"', '\\"')
    reply(1, f'{{"cniVersion":"{version}","code":{code},"msg":"{msg}"}}')


def read_stdin():
    chunks = []
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def main():
    command = os.environ.get("CNI_COMMAND", "")
    stdin = read_stdin() if command != "VERSION" or not os.isatty(0) else b""
    version = string_field(stdin, b"cniVersion")
    if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"):
        error(
            4,
            f"CNI_COMMAND {command!r} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION",
            version if version in VERSIONS else VERSIONS[-1],
        )
    if command == "VERSION":
        chosen = version if version in VERSIONS else VERSIONS[-1]
        listed = ",".join(f'"{v}"' for v in VERSIONS)
        reply(0, f'{{"cniVersion":"{chosen}","supportedVersions":[{listed}]}}')
    path = os.environ.get("MULTINET_CNI_SOCKET") or installed_socket() or DEFAULT_SOCKET
    request = (
        b"".join(f"{k}={v}".encode() + b"\0" for k, v in os.environ.items() if k.startswith("CNI_")) + b"\0" + stdin
    )
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        try:
            sock.sendall(request)
            sock.shutdown(_socket.SHUT_WR)
        except BrokenPipeError:
            pass  # netmgr answered early (e.g. a request too large): its answer is still there to read
        chunks = []
        while True:
            chunk = sock.recv(262144)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        # STATUS answers availability (50: ADD would fail); every other command may simply be retried (11)
        error(
            50 if command == "STATUS" else 11,
            f"cannot reach multinet at {path} ({exc.strerror or exc}): it is not running, or not yet in sync "
            "with its catalog (the socket opens once it is); try again later, and check `multinetctl up`",
            version if version in VERSIONS else VERSIONS[-1],
        )
    finally:
        sock.close()
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\n")
    if not head.isdigit():
        error(
            50 if command == "STATUS" else 11,
            f"multinet at {path} closed the connection without an answer: try again",
            version if version in VERSIONS else VERSIONS[-1],
        )
    reply(int(head), body)


if __name__ == "__main__":
    main()
