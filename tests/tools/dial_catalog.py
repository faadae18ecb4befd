"""Calls the catalog's ListAttachments at TARGET and prints `ok`, or the gRPC status code's name.

Usage: dial_catalog.py TARGET [--ca FILE [--cert FILE --key FILE]]
Without --ca: plaintext. With --ca only: TLS without a client certificate. The server's certificate is checked
for the name every multinet certificate carries (services.common.tls.SERVER_NAME), as multinet's clients do."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common.tls import SERVER_NAME


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()
    if args.ca is None:
        channel = grpc.insecure_channel(args.target)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(args.ca).read_bytes(),
            private_key=Path(args.key).read_bytes() if args.key else None,
            certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
        )
        channel = grpc.secure_channel(args.target, creds, options=[("grpc.ssl_target_name_override", SERVER_NAME)])
    try:
        catalog_pb2_grpc.CatalogStub(channel).ListAttachments(catalog_pb2.ListRequest(), timeout=5)
        print("ok")
    except grpc.RpcError as exc:
        print(exc.code().name)
    finally:
        channel.close()


if __name__ == "__main__":
    main()
