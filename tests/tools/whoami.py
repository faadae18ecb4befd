"""A tiny TCP server for isolation tests: answers every connection with its own name, then closes.

Usage: whoami.py NAME [PORT]   (runs inside a pod netns; stdlib only)"""

import socket
import sys


def main() -> None:
    name = sys.argv[1].encode()
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8080
    family = socket.AF_INET6
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(name + b"\n")


if __name__ == "__main__":
    main()
