"""An external controller in its own process: subscribes to netmgr's WatchEvents and prints one JSON line per
event (revision, type, and what the event carries), flushing each, so a test can read, kill and resume it.

Usage: python event_subscriber.py TARGET [--after REV] [--until REV] [--no-bdp]
  --after REV   resume after this revision (the last one seen), 0 = from the oldest kept event
  --until REV   exit once this revision has been printed
  --no-bdp      keep gRPC's receive window at its 64 KiB default (a stalled subscriber then fills it quickly)"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from multinet.v1 import events_pb2, events_pb2_grpc


def describe(event: events_pb2.Event) -> dict[str, Any]:
    line: dict[str, Any] = {"revision": event.revision, "type": events_pb2.EventType.Name(event.type)}
    if event.HasField("interface"):
        i = event.interface
        line["key"] = [i.network, i.container_id, i.ifname]
        line["status"] = json.loads(event.network_status_json) if event.network_status_json else None
    if event.HasField("pool"):
        p = event.pool
        line["pool"] = {
            "network": p.network,
            "level": events_pb2.PoolPressureLevel.Name(p.level),
            "reserved": p.reserved,
            "size": p.size,
            "percent": p.percent,
            "revision": p.revision,
        }
    if event.HasField("network"):
        line["network"] = event.network.name
    if event.HasField("attachment"):
        line["attachment"] = f"{event.attachment.namespace}/{event.attachment.name}"
    return line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--until", type=int, default=0)
    parser.add_argument("--no-bdp", action="store_true")
    args = parser.parse_args()
    options = [("grpc.http2.bdp_probe", 0)] if args.no_bdp else []
    with grpc.insecure_channel(args.target, options=options) as channel:
        stream = events_pb2_grpc.EventsStub(channel).WatchEvents(
            events_pb2.WatchEventsRequest(after_revision=args.after)
        )
        try:
            for event in stream:
                print(json.dumps(describe(event)), flush=True)
                if args.until and event.revision >= args.until:
                    break
        except grpc.RpcError as exc:
            call: Any = exc  # a grpc.Call too
            print(json.dumps({"error": call.code().name, "details": call.details()}), flush=True)
            return 1
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main())
