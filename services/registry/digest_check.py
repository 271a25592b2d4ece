"""A model version points at something stored: asked of the artifact store before the version's
event is appended (``cairn.cmd.artifacts.digest_held``, services/artifacts/commands_nats.py).

The digest must be held by the model's project: a blob it uploaded, a manifest it pushed (what
``cairn artifacts log DIR --kind model`` and ``run.log_model`` print), a run file or dataset version it logged.
Otherwise a version, and then an alias or a deployment, could point at nothing, or at bytes only
another project may read. When the artifact store does not answer, the version is refused with a
503 (retry later), never accepted unchecked."""

from __future__ import annotations

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, Unavailable
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.service_commands import CommandClient

# A few quick tries: a restarting artifact store answers within seconds; a caller waiting on a
# dead one gets its 503 in seconds too, not after minutes.
TIMEOUT_S = 5.0
ATTEMPTS = 5


def not_stored(digest: str, project: str) -> InvalidInput:
    return InvalidInput(
        f"digest {digest} is not stored in project {project}: push the model folder first "
        f"(cairn artifacts log DIR -p {project} --run RUN --kind model, or run.log_model) "
        "and register the manifest digest it prints",
        details={"field": "artifact_digest", "digest": digest, "project": project})


async def require_stored(rt: ServiceRuntime, ctx: CommandContext, project: str, digest: str) -> None:
    """422 unless ``project`` holds ``digest`` (bytes still stored); 503 if nobody can tell."""
    client = CommandClient(rt.log.nc, "artifacts", timeout_s=TIMEOUT_S, attempts=ATTEMPTS)
    try:
        answer = await client.call("digest_held", {"projects": [project], "digest": digest},
                                   CommandContext(actor=ctx.actor, correlation_id=ctx.correlation_id,
                                                  traceparent=ctx.traceparent))
    except Unavailable:
        raise Unavailable(f"cannot check that digest {digest} is stored in project {project}: the artifacts "
                          "service is not answering; nothing was registered, retry shortly") from None
    if project not in answer.get("held_by", []):
        raise not_stored(digest, project)
