"""Certificates and keys for a local kube-apiserver.

kube-apiserver serves TLS only and needs a service-account signing key; the admin
authenticates with a client certificate in the ``system:masters`` group, the way
kubeadm's admin.conf does. Everything is made fresh per start, with the
``cryptography`` package, and lives only in the control plane's state folder.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertificateFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate(
    folder: Path, server_ips: Sequence[str] = ("127.0.0.1", "10.96.0.1")
) -> CertificateFiles:
    """Write a CA, a serving pair for ``server_ips``, an admin client pair and a SA key pair.

    The serving certificate names every address a client reaches the API server by:
    loopback, and the ``kubernetes`` Service's IP (the first of the service range) that
    pods use; the local cluster adds its node address.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        ca_cert=folder / "ca.crt",
        server_cert=folder / "apiserver.crt",
        server_key=folder / "apiserver.key",
        admin_cert=folder / "admin.crt",
        admin_key=folder / "admin.key",
        service_account_key=folder / "sa.key",
        service_account_pub=folder / "sa.pub",
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("korder-local-ca")
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_sans: list[x509.GeneralName] = [
        x509.DNSName(n)
        for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
    ]
    server_sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in server_ips]
    server = _issue(
        _name("kube-apiserver"),
        server_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=server_sans,
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _issue(
        _name("korder-admin", "system:masters"),
        admin_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pem = serialization.Encoding.PEM
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    files.server_cert.write_bytes(server.public_bytes(pem))
    files.server_key.write_bytes(_pem_key(server_key))
    files.admin_cert.write_bytes(admin.public_bytes(pem))
    files.admin_key.write_bytes(_pem_key(admin_key))
    files.service_account_key.write_bytes(_pem_key(sa_key))
    files.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for key_file in (files.server_key, files.admin_key, files.service_account_key):
        key_file.chmod(0o600)
    return files
