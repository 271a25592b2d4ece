"""A certificate authority for one Cairn NATS cluster, and a certificate per host.

NATS traffic between machines (clients, routes between the servers, leaf nodes) is TLS with
certificates from a CA made here, so a cluster needs no public CA and nothing self-signed per host.

- Keys are ECDSA P-256 (small, fast handshakes, accepted by nats-server's Go TLS and Python's
  ``ssl``), written with mode 0600 before any byte is in them.
- The CA is valid for 10 years (``CA_DAYS``); a host certificate for 2 years (``HOST_DAYS``):
  re-run with ``--force`` (or delete the host's files) to renew a host, and keep the CA, so that
  clients' CA file stays valid.
- A host certificate names the host's DNS name and IP address (both as subject alternative names:
  clients may use either) and allows both server and client use, because a server presents the
  same certificate when it dials a route to another server (routes verify each other: only a
  holder of a certificate from this CA may join the cluster).
- Clients authenticate with a NATS user and password over TLS (cairn.kernel.natsauth), not with
  certificates of their own: one secret per role, already managed, and nothing to renew.

Re-running keeps the CA and every existing host certificate that still names its host's name and
address (a host added or moved gets one signed by the same CA); ``force`` makes them all again (the
CA too, so every host must get the new files).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cairn.kernel.errors import ConfigurationError
from cairn.kernel.private_files import private_folder, write_private

CA_DAYS = 3650
HOST_DAYS = 730
CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"


@dataclass(frozen=True)
class Host:
    """A machine that runs a NATS server: its DNS name and its IP address."""

    name: str
    address: str

    @classmethod
    def parse(cls, text: str) -> "Host":
        """``NAME=ADDR`` (``nats1=10.0.0.11``), the form the CLI takes."""
        name, sep, address = text.partition("=")
        if not sep or not name or not address:
            raise ConfigurationError(f"--host {text!r}: expected NAME=ADDRESS, e.g. nats1=10.0.0.11")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigurationError(f"--host {text!r}: {address!r} is not an IP address") from None
        return cls(name, address)


@dataclass(frozen=True)
class HostFiles:
    """Where a host's certificate and key are."""

    cert: Path
    key: Path


def host_files(directory: Path, host_name: str) -> HostFiles:
    return HostFiles(directory / f"{host_name}.pem", directory / f"{host_name}-key.pem")


def make_certs(directory: Path, cluster: str, hosts: list[Host], *, force: bool = False) -> dict[str, list[Path]]:
    """The CA and a certificate per host under ``directory``; returns which files were made and
    which were kept (``{"made": [...], "kept": [...]}``)."""
    private_folder(directory)
    made: list[Path] = []
    kept: list[Path] = []
    ca_cert_path, ca_key_path = directory / CA_CERT, directory / CA_KEY
    if force or not (ca_cert_path.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(cluster, ca_key)
        _write_key(ca_key_path, ca_key)
        write_private(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM).decode())
        ca_cert_path.chmod(0o644)  # public: every client needs it
        made += [ca_cert_path, ca_key_path]
        force = True  # host certificates of an old CA would not verify
    else:
        ca_key, ca_cert = _read_ca(ca_cert_path, ca_key_path)
        kept += [ca_cert_path, ca_key_path]
    for host in hosts:
        files = host_files(directory, host.name)
        if not force and files.key.exists() and _names_host(files.cert, host):
            kept += [files.cert, files.key]
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _host_certificate(host, key, ca_cert, ca_key)
        _write_key(files.key, key)
        write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
        files.cert.chmod(0o644)
        made += [files.cert, files.key]
    return {"made": made, "kept": kept}


def _names_host(cert_path: Path, host: Host) -> bool:
    """Whether the certificate there is for exactly this host's name and address (a host that
    moved to another address gets a new one on the next run)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (names.get_values_for_type(x509.DNSName) == [host.name]
            and names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(host.address)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode())


def _read_ca(cert_path: Path, key_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"cannot read the cluster CA in {cert_path.parent}: {err}; "
                                 "fix or delete it, or pass --force to make a new one") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{key_path} is not an ECDSA key; pass --force to make a new CA")
    return key, cert


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)  # 5 min: clock skew


def _ca_certificate(cluster: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cairn"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Cairn cluster {cluster} CA")])
    start, end = _validity(CA_DAYS)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _host_certificate(host: Host, key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                      ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    start, end = _validity(HOST_DAYS)
    names: list[x509.GeneralName] = [x509.DNSName(host.name), x509.IPAddress(ipaddress.ip_address(host.address))]
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cairn"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, host.name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
