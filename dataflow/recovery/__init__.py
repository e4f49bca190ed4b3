"""Bytewax's recovery partitions, kept where any pod of any cluster size can find them.

Bytewax resumes only from the complete set of its recovery partitions, each present exactly once among the
cluster's processes, and never re-balances them when the cluster changes size. A volume per pod pins each
partition to one pod (and one zone), so a rescale either loses partitions or duplicates them. Here the durable
copy of the set lives in S3 (`store.py`), and each pod's directory is a working copy of the partitions it owns
under the current cluster size (`layout.py`):

- in:  the pod's place (ordinal, replicas), RECOVERY_PARTITIONS, the store's copies and any local files;
- out: a directory holding exactly this pod's partitions (`restore.py`, run by the init container), cut to the
  one resume epoch pod 0 agreed for this start (`resume.py`, `align.py`, `cut.py`), refreshed into the store
  after every snapshot and once more at exit (`backup.py`, driven by `supervisor.py`, the main process).

Each stored copy's as-of epoch describes its content (only the running execution's rows vouch for more than
the start's R), every write is conditional on the version this pod last fetched or wrote (a fence against a
stale pod), and a start that would resume without state refuses with one line naming the fix.

Settings: dataflow/settings.py `RecoverySettings`. Trade-offs: docs/DEPLOY.md "Operating it".
"""

from dataflow.compat import require

# The store reads and cuts Bytewax's recovery SQLite schema (partition_file.py, cut.py): its internals.
BYTEWAX_TESTED = ("0.21.1", "0.21.1")
require("bytewax", *BYTEWAX_TESTED, what="the recovery store (it reads and cuts Bytewax's recovery schema)")
