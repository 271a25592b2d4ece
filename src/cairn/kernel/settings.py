"""Settings shared by services: environment variables with the CAIRN_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cairn.kernel.bodylimit import DEFAULT_MAX_BODY
from cairn.kernel.natsauth import NatsCredentials

DEFAULT_DATA_DIR = Path.home() / ".cairn"


class CommonSettings(BaseSettings):
    """What every process needs: where the event log is and where its files go.

    ``CAIRN_NATS_CREDS`` names a file of mode 0600 with this process's NATS user and password
    (``{"user": ..., "password": ...}``); the URL itself carries no password. Without it the
    process connects without credentials (a NATS server started for a kernel test)."""

    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_creds: Path | None = None
    replicas: int = Field(default=1, ge=1, le=5)  # of every stream and bucket (a NATS cluster: 3)
    # this process's name among the replicas of its service ("" for the only one): it names the
    # replica's own durable consumer, so each replica keeps a read model of its own
    replica: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9_-]{0,30})?$")
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: str = "info"

    def read_model_dir(self, service: str) -> Path:
        """The folder of a service's read model: ``<data dir>/<service>``, and for a named replica
        ``<data dir>/<service>/replicas/<replica>``, so that two replicas on one machine never share a
        SQLite or DuckDB file (each applies every event to a read model of its own). What is not a
        read model stays in the shared folders: secrets, the service key, artifact blobs."""
        base = self.data_dir / service
        return base / "replicas" / self.replica if self.replica else base

    def nats_credentials(self) -> NatsCredentials | None:
        """This process's NATS credentials, read from ``nats_creds`` (None: connect without)."""
        return NatsCredentials.read(self.nats_creds) if self.nats_creds else None


class ServiceSettings(CommonSettings):
    """A service: the common settings plus its own loopback address and its request body limits:
    CAIRN_MAX_BODY_BYTES (16 MiB) for every route, CAIRN_BODY_LIMITS (JSON, path prefix -> bytes,
    ``*`` for one segment) for the routes that need another (see cairn.kernel.bodylimit)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, ge=0)
    body_limits: dict[str, int] = Field(default_factory=dict)
    service_key_file: Path | None = None  # default: <data dir>/secrets/service.key
    # how long a request naming Cairn-Min-Seq may wait for this replica's read model (then a 503)
    min_seq_wait_s: float = Field(default=5.0, gt=0, le=60)
