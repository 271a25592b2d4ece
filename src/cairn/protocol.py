"""Names that cross process boundaries, in one place: NATS subjects and headers, the streams and
key bucket with their configurations (replicas from settings), the server's error codes, and the
sizes a job spec may name. Services, the SDK, the CLI and the agent all read them here; nothing in
this module imports a service. Name rules live in :mod:`cairn.kernel.ids` (re-exported below).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from typing import Any

from cairn.kernel.errors import Unavailable
from cairn.kernel.ids import (  # noqa: F401 - re-exported: the name rules are part of the protocol
    ALIAS_RE,
    DATASET_NAME_RE,
    DIGEST_RE,
    KEY_RE,
    MODEL_NAME_RE,
    NAME_RE,
    TOKEN_RE,
)

# --- events of record ----------------------------------------------------------------------------
EVENTS_STREAM = "CAIRN_EVENTS"
EVENT_SUBJECT_PREFIX = "cairn.evt"  # cairn.evt.<project>.<aggregate>.<id>
DUPLICATE_WINDOW_S = 3600.0  # how long the server remembers idempotency keys
# Headers that carry envelope fields, so consumers can filter without parsing bodies.
H_TYPE = "Cairn-Type"
H_VERSION = "Cairn-Version"
H_EVENT_ID = "Cairn-Event-Id"
H_ACTOR = "Cairn-Actor"
H_CORRELATION = "Cairn-Correlation-Id"
H_CAUSATION = "Cairn-Causation-Id"
H_TRACEPARENT = "traceparent"
H_MSG_ID = "Nats-Msg-Id"
H_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
# The subject (wildcards allowed) that the expected sequence above is checked against instead of the
# message's own (nats-server 2.12+): a decision over many aggregates (unique names) guards them all.
H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
# read-your-writes across service replicas (docs/cluster.md): a write's answer names the event-log
# sequence of its last event; a request naming a sequence waits until the replica applied it
H_CAIRN_SEQ = "Cairn-Seq"
H_CAIRN_MIN_SEQ = "Cairn-Min-Seq"
# the same for metric points, whose batches are in the metrics stream, not the event log: an
# ingest's answer names the batch's metrics-stream sequence, a read naming one waits until the
# metrics replica that answers shows every batch up to it
H_CAIRN_METRICS_SEQ = "Cairn-Metrics-Seq"
H_CAIRN_MIN_METRICS_SEQ = "Cairn-Min-Metrics-Seq"

# A service's answer to a write that changed who may see a project (a project created with its first
# admin) names the event's stream sequence here; the gateway, whose authorization reads its own
# projection, answers only once that projection has applied it (read-your-writes for the creator).
ACCESS_SEQUENCE_HEADER = "X-Cairn-Access-Seq"

# --- service commands (request/reply between services) --------------------------------------------
COMMAND_SUBJECT_PREFIX = "cairn.cmd"  # cairn.cmd.<service>.<command>

# --- metrics ---------------------------------------------------------------------------------------
METRICS_STREAM = "CAIRN_METRICS"
METRICS_SUBJECT_PREFIX = "cairn.metrics"

ARROW_STREAM = "application/vnd.apache.arrow.stream"  # metric batches and histories travel as Arrow IPC


# The run tag in which the MLflow layer keeps the start time (epoch ms) an MLflow client gave a
# run; the registry orders by it (``client_start_time``).
CLIENT_START_TIME_TAG = "mlflow.cairn.start_time"


@functools.cache
def metric_batch_schema() -> Any:
    """The Arrow schema of a metric batch (SDK -> metrics service, and the MLflow layer's batches);
    pyarrow is imported only by those who need it."""
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("value", pa.float64()), ("step", pa.int64()),
                      ("timestamp", pa.float64())])


# --- blob bundles: many small blobs in one request -------------------------------------------------
# A bundle is a body of frames, each ``<digest hex> <size>\n`` then ``size`` bytes; uploads and
# downloads of many small files travel this way (one request per bundle instead of per file).
BUNDLE_MEDIA_TYPE = "application/vnd.cairn.blob-bundle"
BUNDLE_MEMBER_MAX = 8 << 20  # bigger files travel alone (and take presigned/direct routes)
BUNDLE_MAX_BYTES = 64 << 20  # the bytes of one bundle's members together
BUNDLE_MAX_FILES = 4096
_BUNDLE_HEADER = re.compile(rb"\A([0-9a-f]{64}) (0|[1-9][0-9]{0,9})\n\Z")


def bundle_header(digest: str, size: int) -> bytes:
    """The frame header that precedes a member's bytes in a bundle."""
    return f"{digest} {size}\n".encode()


def parse_bundle_header(line: bytes) -> tuple[str, int]:
    """(digest, size) of a frame header line (newline included); ValueError says what is wrong."""
    match = _BUNDLE_HEADER.match(line)
    if match is None:
        raise ValueError(f"a bundle frame starts with '<64 hex digits> <size>\\n', not {line[:80]!r}")
    return match.group(1).decode(), int(match.group(2))


# --- scheduler and agents --------------------------------------------------------------------------
REPORT_SUBJECT = "cairn.sched.report"
HEARTBEAT_SUBJECT = "cairn.sched.heartbeat"
AGENT_SUBJECT_PREFIX = "cairn.sched.agent"
LOGS_STREAM = "CAIRN_JOBLOGS"
LOGS_SUBJECT_PREFIX = "cairn.logs"  # cairn.logs.<project>.<job>.<attempt>
LOG_END_HEADER = "Cairn-Log-End"  # a chunk with it closes an attempt's log
LOGS_MAX_AGE_S = 30 * 86400  # the full log is also kept as a run artifact


def agent_subject(agent_id: str) -> str:
    return f"{AGENT_SUBJECT_PREFIX}.{agent_id}"


def log_subject(project: str, job_id: str, attempt: int | str) -> str:
    return f"{LOGS_SUBJECT_PREFIX}.{project}.{job_id}.{attempt}"


# --- inference log (sampled requests of serving replicas, and ground-truth labels) -------------------
INFERENCE_STREAM = "CAIRN_INFERENCE"
INFERENCE_SUBJECT_PREFIX = "cairn.inference"  # cairn.inference.<project>.<deployment or _serve>
FEEDBACK_SUBJECT_PREFIX = "cairn.feedback"  # cairn.feedback.<project>.<deployment>
SERVE_SUBJECT_TOKEN = "_serve"  # a plain ``cairn serve`` (no deployment) logs under this name
INFERENCE_MAX_AGE_S = 7 * 86400
INFERENCE_MAX_BYTES = 10 * (1 << 30)


def inference_subject(project: str, deployment: str | None) -> str:
    return f"{INFERENCE_SUBJECT_PREFIX}.{project}.{deployment or SERVE_SUBJECT_TOKEN}"


def feedback_subject(project: str, deployment: str) -> str:
    return f"{FEEDBACK_SUBJECT_PREFIX}.{project}.{deployment}"


# --- key-value bucket shared by services -----------------------------------------------------------
KEY_BUCKET = "cairn-keys"
# the gateway's web sessions (hashes of session ids), shared by all gateway replicas (issue 26)
SESSIONS_BUCKET = "cairn-sessions"

# --- connecting to NATS (cairn.kernel.natstls) -----------------------------------------------------
# CAIRN_NATS_URL may list several servers of a cluster, comma-separated; a client reconnects to
# another when one dies. TLS: the cluster's CA file (cairn cluster certs), and a client certificate
# and key only where a server asks for one (mutual TLS; Cairn's own clusters use passwords).
NATS_URL_ENV = "CAIRN_NATS_URL"
NATS_TLS_CA_ENV = "CAIRN_NATS_TLS_CA"
NATS_TLS_CERT_ENV = "CAIRN_NATS_TLS_CERT"
NATS_TLS_KEY_ENV = "CAIRN_NATS_TLS_KEY"
# leases of singletons (cairn.kernel.leader): key = the singleton's name, value JSON
# {"holder": "<service>/<replica or 'main'>", "term": <int>, "expires_at": <unix seconds>}
LEASE_BUCKET = "cairn-leases"
# on an event a singleton appended: "<singleton>:<term>", the leader's fencing token
H_LEADER_TERM = "Cairn-Leader-Term"

# --- JetStream's error codes -----------------------------------------------------------------------
STREAM_NAME_IN_USE = 10058  # creating a stream that exists (with another configuration)
NO_SUITABLE_PEERS = 10005  # a cluster cannot place the replicas now (too few current peers)
WRONG_LAST_SEQUENCE = 10071  # Nats-Expected-Last-Subject-Sequence was stale
# a publish whose Nats-Msg-Id an earlier publish still being replicated carries (a retry of a write
# that is not answered yet, on a clustered stream): neither stored nor refused, so "retry shortly"
DUPLICATE_IN_PROCESS = 10158


# --- stream configurations: one function each, replicas from settings ------------------------------
def events_stream_config(replicas: int = 1) -> dict[str, Any]:
    """File storage, idempotency window, direct gets, atomic batches allowed."""
    return {"name": EVENTS_STREAM, "subjects": [f"{EVENT_SUBJECT_PREFIX}.>"], "storage": "file",
            "retention": "limits", "duplicate_window": int(DUPLICATE_WINDOW_S * 1e9),
            "num_replicas": replicas, "allow_direct": True, "allow_atomic": True}


def metrics_stream_config(replicas: int = 1) -> dict[str, Any]:
    """Interest retention: a batch stays until the writer of every metrics replica acks it (after
    its Parquet write is durable) and is deleted then (services/metrics/stream.py)."""
    return {"name": METRICS_STREAM, "subjects": [f"{METRICS_SUBJECT_PREFIX}.>"], "storage": "file",
            "retention": "interest", "duplicate_window": int(DUPLICATE_WINDOW_S * 1e9),
            "num_replicas": replicas}


def logs_stream_config(replicas: int = 1) -> dict[str, Any]:
    return {"name": LOGS_STREAM, "subjects": [f"{LOGS_SUBJECT_PREFIX}.>"], "storage": "file",
            "retention": "limits", "max_age": int(LOGS_MAX_AGE_S * 1e9), "discard": "old",
            "num_replicas": replicas, "allow_direct": True}


def inference_stream_config(replicas: int = 1, max_age_s: float = INFERENCE_MAX_AGE_S,
                            max_bytes: int = INFERENCE_MAX_BYTES) -> dict[str, Any]:
    """Sampled requests and labels: not events of record, so limits retention (oldest dropped
    first, by age and by size); the idempotency window makes a retried batch or label count once."""
    window = min(DUPLICATE_WINDOW_S, max_age_s)
    return {"name": INFERENCE_STREAM, "storage": "file", "retention": "limits", "discard": "old",
            "subjects": [f"{INFERENCE_SUBJECT_PREFIX}.>", f"{FEEDBACK_SUBJECT_PREFIX}.>"],
            "max_age": int(max_age_s * 1e9), "max_bytes": int(max_bytes),
            "duplicate_window": int(window * 1e9), "num_replicas": replicas, "allow_direct": True}


async def create_stream(nc: Any, config: dict[str, Any], verb: str = "CREATE", *,
                        wait_for_peers_s: float = 30.0) -> None:
    """Create (or, with ``verb="UPDATE"``, change) a stream; one that exists already is left as
    it is. The one way every stream is made, so a cluster's replicas apply to all of them.

    A cluster that has elected its meta leader may not yet count enough current peers to place
    the stream's replicas ("no suitable peers for placement": nodes still joining, one
    restarting): that is asked again for up to ``wait_for_peers_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_for_peers_s
    while True:
        reply = await nc.request(f"$JS.API.STREAM.{verb}.{config['name']}", json.dumps(config).encode(), timeout=10)
        error = json.loads(reply.data).get("error")
        if not error or error.get("err_code") == STREAM_NAME_IN_USE:
            return
        no_peers = error.get("err_code") == NO_SUITABLE_PEERS or "no suitable peers" in str(error.get("description"))
        if not no_peers or loop.time() > deadline:
            raise Unavailable(f"cannot {verb.lower()} stream {config['name']}: {error.get('description')}")
        await asyncio.sleep(0.5)


# --- job specs -------------------------------------------------------------------------------------
MEMORY_RE = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*\Z", re.IGNORECASE)
UNITS_MIB = {"": 1.0, "B": 1 / (1 << 20), "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def memory_mib(value: Any) -> int:
    """``4096`` (MiB), ``"4Gi"``, ``"512MiB"``, ``"2GB"`` -> MiB (decimal units are read as binary)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a number of MiB or a size like '4Gi'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("memory cannot be negative")
        return int(value)
    match = MEMORY_RE.match(str(value))
    if not match:
        raise ValueError(f"memory {value!r} is not a size: use MiB as a number or e.g. '4Gi', '512Mi'")
    unit = (match.group(2) or "").upper()[:1]
    return int(float(match.group(1)) * UNITS_MIB[unit])


# --- event subscriptions from other systems (issue 26-E: docs/cluster.md) ----------------------------
SUBSCRIBER_USER_PREFIX = "sub-"  # an outside subscriber's NATS user is sub-<name>
SUBSCRIBER_INBOX_PREFIX = "_INBOX_sub"  # its deliveries and API replies: _INBOX_sub.<nats user>.<...>
SUBSCRIBER_AGGREGATE = "event_subscriber"  # events of record on cairn.evt._site.event_subscriber.<name>
NATS_AUTH_FILE_ENV = "CAIRN_NATS_AUTH_FILE"  # the users file a NATS node includes (subscriber_sync writes it)
SEAL_KEY_NAME = "event-seal"  # cairn-keys entry: AES-256-GCM key for secret fields inside events
# webhook deliveries the gateway holding the gateway.webhooks lease finished: key = webhook id,
# value = the log sequence of the event that queued its last finished one (services/gateway/webhook_progress.py)
WEBHOOK_PROGRESS_BUCKET = "cairn-webhook-progress"


# --- notebooks (issue 28-A: docs/notebooks.md) ------------------------------------------------------
NOTEBOOK_OUTPUTS_ENV = "CAIRN_NOTEBOOK_OUTPUTS"  # 1: a notebook run's code keeps its outputs (secrets scrubbed)
NOTEBOOK_CODE_KIND = "notebook"  # a code record's ``kind`` when its archive holds a notebook

# --- rich media of runs (issue 28-M: docs/media.md) ----------------------------------------------------
# A run's media index lives in the artifact store: aggregate media_set (id = run id), events below.
MEDIA_AGGREGATE = "media_set"
# (types named media.*, not run.*: run.* events are the registry's, apart from the artifact store's
# run.artifact_logged / run.dataset_used)
MEDIA_LOGGED = "media.logged"  # one entry: key, step, kind, digest (+ thumbnail), media type, size
MEDIA_THUMBNAIL_LOGGED = "media.thumbnail_logged"  # a thumbnail that arrived apart (MLflow's +compressed)
MEDIA_KINDS = ("image", "figure", "table", "text", "html")
# Keys: what MLflow allows in log_image keys (letters, digits, _ - . space /), no empty segment, '.' or '..'.
MEDIA_KEY_CHARS = r"[A-Za-z0-9_\-. /]"
MEDIA_KEY_MAX = 200
MEDIA_THUMBNAIL_PX = 256  # the longer side of a thumbnail the SDK makes


def media_key_problem(key: object) -> str | None:
    """What is wrong with a media key (None: nothing); shared by the SDK and the artifact store."""
    if not isinstance(key, str) or not key:
        return "it is empty"
    if len(key) > MEDIA_KEY_MAX:
        return f"it is longer than {MEDIA_KEY_MAX} characters"
    bad = sorted({c for c in key if not re.fullmatch(MEDIA_KEY_CHARS, c)})
    if bad:
        return f"it contains {''.join(bad)!r}; use letters, digits, '_', '-', '.', ' ' and '/'"
    if any(part.strip() in ("", ".", "..") for part in key.split("/")):
        return "a '/'-separated part is empty, '.' or '..'"
    return None
