"""The graphkit run and its plumbing: the context, the stages and the run directory.

Layers (``docs/architecture.md``): :mod:`graphkit.pipeline.run` publishes a run directory by
running :mod:`graphkit.pipeline.stages`, each of which adapts one library call to the
:class:`RunContext` of :mod:`graphkit.pipeline.context`. Library modules never import this
package.
"""

from graphkit.pipeline.context import RunContext, Stage, StageResults
from graphkit.pipeline.run import RunSummary, load_graph, run_pipeline, write_back, write_outputs
from graphkit.pipeline.stages import (
    STAGE_NAMES,
    STAGES,
    alerts_stage,
    circles_stage,
    cluster_risk_stage,
    clusters_stage,
    contagion_stage,
    flows_stage,
    gnn_stage,
    report_stage,
    rings_stage,
    scores_stage,
    select_stages,
    stages_until,
)

__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "RunContext",
    "RunSummary",
    "Stage",
    "StageResults",
    "alerts_stage",
    "circles_stage",
    "cluster_risk_stage",
    "clusters_stage",
    "contagion_stage",
    "flows_stage",
    "gnn_stage",
    "load_graph",
    "report_stage",
    "rings_stage",
    "run_pipeline",
    "scores_stage",
    "select_stages",
    "stages_until",
    "write_back",
    "write_outputs",
]
