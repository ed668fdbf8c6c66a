"""The TLS certificate shared by postfix and dovecot: self-signed until the user gives one."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def regenerate_if_self_signed(tls_dir: Path, hostname: str) -> bool:
    """A new hostname gets a new self-signed certificate; a user's certificate is kept."""
    marker = tls_dir / "self-signed"
    if not marker.exists() or marker.read_text().strip() == hostname:
        return False
    return ensure_self_signed(tls_dir, hostname, replace=True)


def ensure_self_signed(tls_dir: Path, hostname: str, replace: bool = False) -> bool:
    """Make a self-signed certificate for `hostname` unless one exists. True if made."""
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert_path.exists() and key_path.exists() and not replace:
        return False
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o755)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    install_certificate(tls_dir, cert.public_bytes(serialization.Encoding.PEM), key_pem)
    (tls_dir / "self-signed").write_text(hostname + "\n")
    return True


def install_certificate(tls_dir: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Replace the certificate with the user's (validated by the caller)."""
    tmp_key, tmp_cert = tls_dir / ".key.pem.tmp", tls_dir / ".cert.pem.tmp"
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    tmp_cert.write_bytes(cert_pem)
    os.replace(tmp_key, tls_dir / "key.pem")
    os.replace(tmp_cert, tls_dir / "cert.pem")
    (tls_dir / "self-signed").unlink(missing_ok=True)


class CertificateProblem(ValueError):
    """A user certificate or key that cannot be installed; `field` says which input is wrong."""

    def __init__(self, field: str, error: str, message: str):
        super().__init__(message)
        self.field, self.error = field, error


def check_pair(cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """The server certificate (first of the PEM chain) once the pair is known usable.

    Raises CertificateProblem naming "certificate" or "key": unreadable PEM, an
    encrypted key, an expired certificate, or a key that is not the certificate's.
    """
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateProblem("certificate", "certificate_invalid", "not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateProblem("key", "key_encrypted", "the private key is encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateProblem("key", "key_invalid", "not a PEM private key") from None
    cert = chain[0]
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        raise CertificateProblem("certificate", "certificate_expired",
                                 f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != cert.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise CertificateProblem("key", "key_mismatch", "the private key does not belong to the certificate")
    return cert


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def snapshot(tls_dir: Path) -> Callable[[], None]:
    """Remember the current certificate files; the returned callable puts them back."""
    names = ("cert.pem", "key.pem", "self-signed")
    saved = {name: (tls_dir / name).read_bytes() if (tls_dir / name).exists() else None for name in names}

    def restore() -> None:
        for name, content in saved.items():
            path = tls_dir / name
            if content is None:
                path.unlink(missing_ok=True)
                continue
            tmp = tls_dir / f".{name}.restore"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name == "key.pem" else 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, path)

    return restore
