"""How a Cairn process reaches NATS beyond one loopback server: several servers, and TLS.

Every connection Cairn makes goes through :func:`cairn.kernel.eventlog.connect`, which asks this
module for the server list and the TLS context, so services, agents and tools honour the same
settings without each reading them:

- ``CAIRN_NATS_URL`` (or an agent's URL) may name several servers of a cluster, comma-separated
  (``tls://10.0.0.11:4222,tls://10.0.0.12:4222``); nats-py reconnects to another when one dies.
- ``CAIRN_NATS_TLS_CA``: the cluster CA's certificate (``cairn cluster certs``); servers are then
  verified against it, host names and IP addresses included.
- ``CAIRN_NATS_TLS_CERT`` / ``CAIRN_NATS_TLS_KEY``: a client certificate, only for servers that
  ask for one (mutual TLS); Cairn's own cluster configs authenticate clients by password.

None of these set: no TLS context, and the single URL of ``cairn up`` works as it always did.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from cairn.kernel.errors import ConfigurationError
from cairn.protocol import NATS_TLS_CA_ENV, NATS_TLS_CERT_ENV, NATS_TLS_KEY_ENV


def server_urls(url: str) -> list[str]:
    """The servers a NATS URL setting names (one, or several comma-separated), in order."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ConfigurationError(f"NATS URL {url!r} names no server; e.g. nats://127.0.0.1:4222")
    return servers


def client_tls_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext | None:
    """The TLS context that the environment asks for, or None when it asks for none.

    A CA file makes a context that trusts only that CA (a cluster's own CA is not a public one);
    a client certificate needs its key too."""
    env = os.environ if env is None else env
    ca, cert, key = (env.get(name, "").strip() for name in (NATS_TLS_CA_ENV, NATS_TLS_CERT_ENV, NATS_TLS_KEY_ENV))
    if not (ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise ConfigurationError(f"{NATS_TLS_CERT_ENV} and {NATS_TLS_KEY_ENV} go together: set both or neither")
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        named = ", ".join(f"{n}={v}" for n, v in ((NATS_TLS_CA_ENV, ca), (NATS_TLS_CERT_ENV, cert),
                                                 (NATS_TLS_KEY_ENV, key)) if v)
        raise ConfigurationError(f"cannot load the NATS TLS files ({named}): {err}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

