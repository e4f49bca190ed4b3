#!/bin/sh
# Container entrypoint: derive this process's Bytewax id and its peers from the StatefulSet pod, then exec
# the dataflow. Pod `<sts>-<ordinal>` is process <ordinal>; peers are every `<sts>-<i>` behind the
# headless Service (BYTEWAX_ADDRESSES, when set, is used as it is: the pods' life played on one machine).
# With RECOVERY_STORE_URL set, the dataflow runs under the recovery supervisor (dataflow/recovery), which
# appends Bytewax's recovery flags and keeps the partitions in the store. Extra arguments are passed through.
set -eu

replicas="${BYTEWAX_REPLICAS:-1}"
pod="${BYTEWAX_POD_NAME:-$(hostname)}"
ordinal="${pod##*-}"
port="${BYTEWAX_PORT:-2101}"

case "$replicas" in '' | *[!0-9]*) echo "entrypoint: BYTEWAX_REPLICAS='$replicas' is not a number" >&2; exit 64 ;; esac

if [ "$replicas" -gt 1 ]; then
    case "$ordinal" in
        '' | *[!0-9]*) echo "entrypoint: cannot derive a pod ordinal from '$pod'" >&2; exit 64 ;;
    esac
    if [ "$ordinal" -ge "$replicas" ]; then
        echo "entrypoint: pod ordinal $ordinal is not below BYTEWAX_REPLICAS=$replicas" >&2
        exit 64
    fi
    service="${BYTEWAX_SERVICE:?entrypoint: BYTEWAX_SERVICE must name the headless Service}"
    namespace="${BYTEWAX_NAMESPACE:-default}"
    base="${pod%-*}"
    addresses="${BYTEWAX_ADDRESSES:-}"
    if [ -z "$addresses" ]; then
        i=0
        while [ "$i" -lt "$replicas" ]; do
            addresses="${addresses:+$addresses;}$base-$i.$service.$namespace.svc.cluster.local:$port"
            i=$((i + 1))
        done
    fi
    BYTEWAX_PROCESS_ID="$ordinal"
    BYTEWAX_ADDRESSES="$addresses"
    export BYTEWAX_PROCESS_ID BYTEWAX_ADDRESSES
    set -- -i "$BYTEWAX_PROCESS_ID" -a "$BYTEWAX_ADDRESSES" "$@"
fi

if [ -n "${RECOVERY_STORE_URL:-}" ]; then
    exec python -m dataflow.recovery run -- python -m bytewax.run dataflow.flow -w "${BYTEWAX_WORKERS_PER_PROCESS:-1}" "$@"
fi
exec python -m bytewax.run dataflow.flow -w "${BYTEWAX_WORKERS_PER_PROCESS:-1}" "$@"
