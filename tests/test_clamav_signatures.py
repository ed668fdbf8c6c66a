"""Third-party ClamAV signatures by rating, from a mirror the test serves.

The test's HTTP server stands in for the providers' mirrors, in the layout of a local
mirror (<url>/<provider>/<file>, Linux Malware Detect's files inside its .tgz signature
pack): every database of mailctl.signatures.PROVIDERS, made small here, each with one
signature of its own. Each rating must make clamd load exactly its set, and a test file
that only a "high" database detects is refused only at "high".
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import smtplib
import subprocess
import tarfile
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from protocol import imaps, send, token, wait_for

from mailctl import signatures

pytestmark = pytest.mark.containers

DOMAIN = "example.org"
USER, PASSWORD = "flclam", "Clam-Pass-4711"
MIRROR_PORT = int(os.environ.get("MAIL_TEST_FILTER_PORT", "3510")) + 20
HIGH_ONLY = "foxhole_all.ndb"   # a HIGH database of Sanesecurity
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def marker(name: str) -> bytes:
    return f"FLTEST-MARKER-{name}-END".encode()


def database(name: str) -> str:
    """A small, valid database of the kind its file name says, detecting marker(name)."""
    ext, m = name.rsplit(".", 1)[-1], marker(name)
    sig = "FLTEST_" + name.replace(".", "_").replace("-", "_")
    return {
        "ndb": f"{sig}:0:*:{m.hex()}\n",
        "hdb": f"{hashlib.md5(m).hexdigest()}:{len(m)}:{sig}\n",
        "fp": f"{hashlib.md5(m).hexdigest()}:{len(m)}:{sig}\n",
        "hsb": f"{hashlib.sha256(m).hexdigest()}:{len(m)}:{sig}\n",
        "ldb": f"{sig};Engine:51-255,Target:0;0;{m.hex()}\n",
        "db": f"{sig}={m.hex()}\n",
        "ign2": "FLTEST_never_matches\n",
        "cdb": f"{sig}:CL_TYPE_ZIP:*:fltest-never\\.exe:*:*:*:*:*:*\n",
        "ftm": "0:0:464c544553544d41474943:FLTEST magic:CL_TYPE_ANY:CL_TYPE_TEXT_ASCII\n",
        "yar": f'rule {sig} {{ strings: $a = "{m.decode()}" condition: $a }}\n',
        "yara": f'rule {sig} {{ strings: $a = "{m.decode()}" condition: $a }}\n',
    }[ext]


def make_mirror(root: Path) -> None:
    for provider, (upstream, files) in signatures.PROVIDERS.items():
        folder = root / provider
        folder.mkdir(parents=True)
        if upstream.endswith(".tgz"):  # the signature pack: sigs/<file> inside a .tgz
            with tarfile.open(folder / upstream.rsplit("/", 1)[-1], "w:gz") as tgz:
                for path, _ in files:
                    data = database(signatures.local_name(path)).encode()
                    info = tarfile.TarInfo(f"maldet-sigpack/sigs/{path}")
                    info.size = len(data)
                    tgz.addfile(info, io.BytesIO(data))
            continue
        for path, _ in files:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(database(signatures.local_name(path)))


@pytest.fixture(scope="module")
def mx(mail):
    mail.run("configure-module", {"hostname": "mail.example.org", "user_domain": "local", "mail_domain": DOMAIN})
    mail.run("add-user", {"user": USER, "password": PASSWORD, "display_name": "Clam"})
    before = mail.run("get-filter-configuration")["antivirus"]
    yield mail
    mail.run("set-filter-configuration", {"antivirus": {
        k: before[k] for k in ("enabled", "clamav_official_sigs", "third_party_sigs_rating", "mirror_url")}})
    mail.run("remove-user", {"user": USER}, expect=None)


@pytest.fixture(scope="module")
def mirror(mx, tmp_path_factory) -> str:
    """The test mirror's URL, on the instance network's gateway (reached by the clamav container)."""
    out = subprocess.run(["podman", "network", "inspect", mx.instance], capture_output=True, text=True,
                         check=True).stdout
    net = json.loads(out)[0]
    gateway = (net["subnets"][0]["gateway"] if net.get("subnets")
               else net["plugins"][0]["ipam"]["ranges"][0][0]["gateway"])
    root = tmp_path_factory.mktemp("mirror")
    make_mirror(root)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((gateway, MIRROR_PORT), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{gateway}:{MIRROR_PORT}"
    server.shutdown()
    server.server_close()


def expected(rating: str) -> list[str]:
    return sorted(signatures.loaded(rating, official=False) + ["mail-local.ndb"])


def antivirus(mx) -> dict:
    return mx.run("get-filter-configuration")["antivirus"]


def rate(mx, mirror: str, rating: str) -> dict:
    """Set the rating; wait until the update job has run for it and clamd has the set."""
    before = antivirus(mx)["signature_updates"]["time"]
    mx.run("set-filter-configuration", {"antivirus": {"enabled": True, "third_party_sigs_rating": rating,
                                                      "mirror_url": mirror}})

    def done():
        av = antivirus(mx)
        fresh = av["signature_updates"]["time"] not in (None, before)
        return av if fresh and av["databases"] == expected(rating) else None
    return wait_for(done, f"clamd loading the {rating} set", timeout=90)


def scanned_by_clamd(mx, name: str) -> str:
    """clamd's verdict on a file holding marker(name), scanned in the clamav container."""
    path = f"/tmp/{name}.probe"
    subprocess.run(["podman", "exec", "-i", f"{mx.instance}-clamav", "sh", "-c", f"cat > {path}"],
                   input=b"x " + marker(name) + b" y", check=True)
    return mx.exec("clamav", "clamdscan", "--no-summary", "--fdpass", path)


def mail_with(name: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "sender@example.net", f"{USER}@{DOMAIN}", f"attachment {token()}"
    m["Date"], m["Message-ID"] = formatdate(), make_msgid(domain="client.example.net")
    m.set_content("The document you asked for.\n")
    m.add_attachment(b"x " + marker(name) + b" y", maintype="application", subtype="octet-stream",
                     filename="document.bin")
    return m


def delivered(mx, subject: str) -> bool:
    def look():
        with imaps(mx, USER, PASSWORD) as imap:
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            return bool(found[0])
    return wait_for(look, f"delivery of {subject!r}")


def test_each_rating_loads_its_set_and_the_high_only_file_is_refused_only_at_high(mx, mirror):
    av = rate(mx, mirror, "low")
    assert "sanesecurity.ftm" not in av["databases"]  # file types: only beside the official ones
    assert av["signature_updates"]["result"] == "ok" and av["signature_updates"]["failed"] == []
    assert "FOUND" in scanned_by_clamd(mx, "junk.ndb")                 # LOW: loaded
    assert "FOUND" not in scanned_by_clamd(mx, "lott.ndb")             # MEDIUM: not yet
    m = mail_with(HIGH_ONLY)
    send(mx, m)
    assert delivered(mx, m["Subject"])

    rate(mx, mirror, "medium")
    assert "FOUND" in scanned_by_clamd(mx, "lott.ndb")
    assert "FOUND" in scanned_by_clamd(mx, "winnow_phish_complete_url.ndb")  # LOWMEDIUMONLY
    m = mail_with(HIGH_ONLY)
    send(mx, m)
    assert delivered(mx, m["Subject"])

    av = rate(mx, mirror, "high")
    assert "winnow_phish_complete_url.ndb" not in av["databases"]      # not at high
    assert "FOUND" in scanned_by_clamd(mx, HIGH_ONLY)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, mail_with(HIGH_ONLY))
    assert refused.value.smtp_code == 554 and b"FLTEST_foxhole_all_ndb" in refused.value.smtp_error
    # With the whole set loaded, a virus in an attachment is still found (file types intact).
    eicar = mail_with("eicar")
    eicar.get_payload()[1].set_content(EICAR, maintype="application", subtype="octet-stream", filename="e.com")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mx, eicar)
    assert refused.value.smtp_code == 554 and b"EICAR" in refused.value.smtp_error

    # Back to low: the high databases are gone from clamd at once (from the download cache).
    rate(mx, mirror, "low")
    m = mail_with(HIGH_ONLY)
    send(mx, m)
    assert delivered(mx, m["Subject"])


def test_an_unreachable_mirror_is_reported_and_the_loaded_set_is_kept(mx, mirror):
    rate(mx, mirror, "medium")
    before = antivirus(mx)["signature_updates"]["time"]
    mx.run("set-filter-configuration", {"antivirus": {"enabled": True, "mirror_url": "http://127.0.0.1:9"}})
    # An update already under way for the good mirror may finish first: wait for the failed one.
    av = wait_for(lambda: (a := antivirus(mx))["signature_updates"]["time"] != before
                  and a["signature_updates"]["result"] == "error" and a,
                  "an update from the unreachable mirror, reported as failed", timeout=120)
    assert "junk.ndb" in av["signature_updates"]["failed"]
    assert av["databases"] == expected("medium")    # what was downloaded before stays in use
