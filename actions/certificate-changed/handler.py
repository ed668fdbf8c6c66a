"""certificate-changed: install the user's certificate (PEM text or host files), reload TLS.

Without certificate fields (the NS8 event) postfix and dovecot just reload TLS. A new
pair is checked first (key matches, not expired, not encrypted: errors name the field),
then replaces /tls/cert.pem and key.pem; if the action fails later the previous files
come back (ctx.undo).
"""

from pathlib import Path

from mailctl.tls import CertificateProblem, check_pair, install_certificate, snapshot

PAIRS = (("certificate", "key"), ("certificate_file", "key_file"))
TLS_DAEMONS = ("postfix", "dovecot")


def _restore_and_reload(ctx, restore):
    """Undo: the previous files back, and the daemons (already reloaded) read them again."""
    restore()
    ctx.applier.reload_after_undo(TLS_DAEMONS)


def _read(ctx, data, field):
    """The bytes of a PEM text field, or of the host file a *_file field names."""
    if not field.endswith("_file"):
        return data[field].encode()
    try:
        return Path(data[field]).read_bytes()
    except OSError as e:
        ctx.reject(field, f"{field}_unreadable", data[field], e.strerror or "cannot read the file")


def run(ctx, data):
    for first, second in PAIRS:
        for a, b in ((first, second), (second, first)):
            if a in data and b not in data:
                ctx.reject(b, f"{b}_required", None, f"{a} needs {b}")
    if "certificate" in data and "certificate_file" in data:
        ctx.reject("certificate_file", "certificate_file_conflict", data["certificate_file"],
                   "give the certificate as text or as a file, not both")
    given = next((pair for pair in PAIRS if pair[0] in data), None)
    if given:
        cert_pem, key_pem = _read(ctx, data, given[0]), _read(ctx, data, given[1])
        try:
            check_pair(cert_pem, key_pem)
        except CertificateProblem as problem:
            field = given[0] if problem.field == "certificate" else given[1]
            value = data[field] if field.endswith("_file") else None  # never echo PEM text
            ctx.reject(field, problem.error, value, str(problem))
        tls_dir = ctx.instance.tls_dir
        tls_dir.mkdir(parents=True, exist_ok=True)
        restore = snapshot(tls_dir)
        ctx.undo.append(lambda: _restore_and_reload(ctx, restore))
        install_certificate(tls_dir, cert_pem, key_pem)
    ctx.reload.update(TLS_DAEMONS)
    return {}
