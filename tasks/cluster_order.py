"""Order across the nodes of a cluster, which pyinfra does not give by itself.

pyinfra orders each host's operations on their own and joins hosts only at operations they share:
the same call site (the same stack of line numbers) is one operation, run once every host that
has it finished what came before it there. A node with less to do in a phase (a worker makes no
image, the head starts no worker rank) would otherwise run ahead into the next phase: a worker
starting its rank before the head copied the image, the head before its workers. A marker every
node reaches at one call site holds each node until all have finished the phase. The marker runs
nothing (it is skipped), so it is never a change.
"""

from __future__ import annotations

from pyinfra.operations import server


def every_node_reaches(phase: str) -> None:
    """Hold this node until every node of its cluster finished ``phase``. Call it from one line
    that every node of the cluster runs (not inside a head- or worker-only branch)."""
    server.shell(
        name=f"Cluster: every node finished {phase}",
        commands=["true"],
        _if=lambda: False,
    )
