"""moto's server as the local Kinesis, with its resharding and reading behaviour made faithful to Kinesis.

moto differs from Kinesis in ways that matter to a reader that follows resharding:
- it routes a record to the first shard whose hash range covers the key, closed or not, so new records
  can land in a closed parent (whose EndingSequenceNumber then keeps moving);
- SplitShard moves the parent's records into the children, under new sequence numbers;
- MergeShards copies both parents' records into the merged shard, so they exist twice.
Kinesis leaves records in the closed parents and writes new ones only to open shards. This launcher patches
those three methods to behave like Kinesis. It also makes reading as strict as Kinesis (`devstack.kinesis_strict`):
- a closed shard read to its end answers a null `NextShardIterator` (moto never does): the only end signal;
- ListShards pages (MaxResults defaults to 1000 as in Kinesis) and continues on `NextToken` alone; NextToken
  with StreamName is InvalidArgumentException (moto wants both, and rejects the token alone);
- knobs (on in tests and the demo through `start_kinesis`): an empty GetRecords page every Nth call on a shard
  that still holds records (Kinesis returns such pages), and a small positive `MillisBehindLatest` on every
  other call at the tip of an open shard (Kinesis reports one at times when caught up);
- admin actions for tests (`trim_shard`, `expire_shard`): retention trimming a shard's oldest records, and a
  closed shard expiring out of the listing.
Then it runs moto's server (`-p 0` binds a free port; `--port-file` reports it back):

    python -m devstack.kinesis_server -H 127.0.0.1 -p 4567 [--empty-page-every 3] [--idle-lag-ms 200]
"""

from __future__ import annotations

import argparse
import os
import sys

from moto.kinesis import models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.utilities.utils import md5_hash

from devstack import kinesis_strict  # refuses, at import, a moto release it was not tested with (MOTO_TESTED)


def _open_shard_for_key(self: models.Stream, partition_key: str, explicit_hash_key: str) -> models.Shard | None:
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


def _next_shard_number(self: models.Stream) -> int:
    # Kept on the stream, so a shard that expired out of the listing never has its number reused.
    number = max([getattr(self, "_devstack_next_shard", 0), *(shard._shard_id + 1 for shard in self.shards.values())])
    self._devstack_next_shard = number + 1
    return number


def _split_shard(self: models.Stream, shard_to_split: str, new_starting_hash_key: str) -> None:
    shard = self.shards[shard_to_split]
    split_at = int(new_starting_hash_key)
    if not shard.starting_hash < split_at <= shard.ending_hash:
        raise InvalidArgumentError(f"NewStartingHashKey {split_at} is outside shard {shard_to_split}")
    if not shard.is_open:
        raise InvalidArgumentError(f"Shard {shard_to_split} has already been merged or split")
    first = _next_shard_number(self)
    for number, (low, high) in enumerate(((shard.starting_hash, split_at - 1), (split_at, shard.ending_hash))):
        child = models.Shard(first + number, low, high, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    shard.is_open = False


def _merge_shards(self: models.Stream, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    shard1, shard2 = self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]
    low, high = sorted((shard1, shard2), key=lambda s: s.starting_hash)
    if low.ending_hash + 1 != high.starting_hash or not (shard1.is_open and shard2.is_open):
        raise InvalidArgumentError(adjacent_shard_to_merge)
    merged = models.Shard(
        _next_shard_number(self),
        low.starting_hash,
        high.ending_hash,
        parent=shard1.shard_id,
        adjacent_parent=shard2.shard_id,
    )
    self.shards[merged.shard_id] = merged
    shard1.is_open = False
    shard2.is_open = False


def patch_moto() -> None:
    models.Stream.get_shard_for_key = _open_shard_for_key  # type: ignore[method-assign]
    models.Stream.split_shard = _split_shard  # type: ignore[method-assign]
    models.Stream.merge_shards = _merge_shards  # type: ignore[method-assign]
    kinesis_strict.patch_moto()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.kinesis_server", description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=0, help="0 (default): a free port, see --port-file")
    parser.add_argument("--port-file", default=None, help="write the bound port here once listening")
    parser.add_argument(
        "--empty-page-every", type=int, default=0, help="every Nth GetRecords on a shard with records left is empty"
    )
    parser.add_argument(
        "--idle-lag-ms", type=int, default=0, help="lag up to this at an open shard's tip, every other call"
    )
    parser.add_argument("--list-shards-page", type=int, default=1000, help="ListShards page without MaxResults")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    kinesis_strict.KNOBS.empty_page_every = max(0, args.empty_page_every)
    kinesis_strict.KNOBS.idle_lag_ms = max(0, args.idle_lag_ms)
    kinesis_strict.KNOBS.list_shards_page = max(1, args.list_shards_page)
    patch_moto()
    serve(args.host, args.port, args.port_file)


def serve(host: str, port: int, port_file: str | None) -> None:
    """moto's server app on `host:port` (port 0: any free one), the bound port written to `port_file`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = kinesis_strict.AdminActions(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    bound = int(server.server_address[1])
    if port_file:
        tmp = f"{port_file}.tmp"
        with open(tmp, "w") as out:
            out.write(str(bound))
        os.replace(tmp, port_file)  # atomic: the parent never reads a half-written port
    sys.stderr.write(f"kinesis_server.listening host={host} port={bound}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
