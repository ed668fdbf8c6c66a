"""Third-party ClamAV signatures: which databases each rating loads, and where from.

The sets are those NS8's clamav image gets from clamav-unofficial-sigs 7.2.5 with no
subscription keys (so SecuriteInfo, MalwarePatrol and Malware Expert are out): each
database has a false-positive rating, and `third_party_sigs_rating` loads

    low:    REQUIRED, LOW, LOWONLY, LOWMEDIUMONLY
    medium: REQUIRED, LOW, MEDIUM, MEDIUMONLY, LOWMEDIUMONLY
    high:   REQUIRED, LOW, MEDIUM, HIGH

plus the Twinclams databases NS8 always adds. A file type database (.ftm) is loaded
only with the official signatures: ClamAV uses its built-in file types only when no .ftm
is loaded, so Sanesecurity's alone would stop clamd from recognising mail and archives. The clamav image's hourly job
(images/clamav/update-signatures) downloads the selected set from the providers'
mirrors, or from `antivirus.mirror_url` (a local mirror for offline sites, laid out as
<mirror_url>/<provider>/<file>), and installs exactly that set for clamd.
"""

from __future__ import annotations

import json
from typing import Any

# Provider -> (its mirror, [(file, rating)]). A mirror ending in ".tgz" is an archive
# that holds the files (Linux Malware Detect's signature pack).
PROVIDERS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "sanesecurity": ("rsync://rsync.sanesecurity.net/sanesecurity", [
        ("sanesecurity.ftm", "REQUIRED"), ("sigwhitelist.ign2", "REQUIRED"),
        ("blurl.ndb", "LOW"), ("junk.ndb", "LOW"), ("jurlbl.ndb", "LOW"), ("malwarehash.hsb", "LOW"),
        ("phish.ndb", "LOW"), ("rogue.hdb", "LOW"), ("scam.ndb", "LOW"), ("spamattach.hdb", "LOW"),
        ("spamimg.hdb", "LOW"),
        ("badmacro.ndb", "MEDIUM"), ("jurlbla.ndb", "MEDIUM"), ("lott.ndb", "MEDIUM"),
        ("shelter.ldb", "MEDIUM"), ("spam.ldb", "MEDIUM"), ("spear.ndb", "MEDIUM"), ("spearl.ndb", "MEDIUM"),
        ("foxhole_filename.cdb", "LOW"), ("foxhole_generic.cdb", "LOW"),
        ("foxhole_js.cdb", "MEDIUM"), ("foxhole_js.ndb", "MEDIUM"),
        ("foxhole_all.cdb", "HIGH"), ("foxhole_all.ndb", "HIGH"), ("foxhole_mail.cdb", "HIGH"),
        ("winnow_bad_cw.hdb", "LOW"), ("winnow_extended_malware.hdb", "LOW"),
        ("winnow_malware_links.ndb", "LOW"), ("winnow_malware.hdb", "LOW"),
        ("winnow_phish_complete_url.ndb", "LOWMEDIUMONLY"), ("winnow.attachments.hdb", "LOW"),
        ("winnow_extended_malware_links.ndb", "MEDIUM"), ("winnow_spam_complete.ndb", "MEDIUM"),
        ("winnow.complex.patterns.ldb", "MEDIUM"), ("winnow_phish_complete.ndb", "HIGH"),
        ("MiscreantPunch099-Low.ldb", "MEDIUM"), ("MiscreantPunch099-INFO-Low.ldb", "HIGH"),
        ("bofhland_cracked_URL.ndb", "LOW"), ("bofhland_malware_attach.hdb", "LOW"),
        ("bofhland_malware_URL.ndb", "LOW"), ("bofhland_phishing_URL.ndb", "LOW"),
        ("hackingteam.hsb", "LOW"),
        ("phishtank.ndb", "LOW"), ("porcupine.hsb", "LOW"), ("porcupine.ndb", "LOW"),
        ("Sanesecurity_sigtest.yara", "LOW"), ("Sanesecurity_spam.yara", "LOW"),
    ]),
    "linuxmalwaredetect": ("https://cdn.rfxn.com/downloads/maldet-sigpack.tgz", [
        ("rfxn.ndb", "LOW"), ("rfxn.hdb", "LOW"), ("rfxn.yara", "LOW"),
    ]),
    "interserver": ("https://sigs.interserver.net", [
        ("whitelist.fp", "REQUIRED"), ("interserver256.hdb", "LOW"),
        ("interservertopline.db", "MEDIUM"), ("shell.ldb", "HIGH"),
    ]),
    "urlhaus": ("https://urlhaus.abuse.ch/downloads", [("urlhaus.ndb", "LOW")]),
    "yararulesproject": ("https://raw.githubusercontent.com/Yara-Rules/rules/master", [
        ("exploit_kits/EK_BleedingLife.yar", "LOW"), ("webshells/WShell_ASPXSpy.yar", "LOW"),
        ("webshells/WShell_Drupalgeddon2_icos.yar", "LOW"),
        *[(f"cve_rules/CVE-{n}.yar", "MEDIUM") for n in (
            "2010-0805", "2010-0887", "2010-1297", "2012-0158", "2013-0074", "2013-0422", "2015-1701",
            "2015-2426", "2015-2545", "2015-5119", "2016-5195", "2017-11882", "2018-20250", "2018-4878")],
        *[(f"email/{n}.yar", "MEDIUM") for n in (
            "bank_rule", "EMAIL_Cryptowall", "Email_fake_it_maintenance_bulletin",
            "Email_quota_limit_warning", "email_Ukraine_BE_powerattack", "scam")],
        ("email/Email_generic_phishing.yar", "HIGH"),
        *[(f"maldocs/{n}.yar", "HIGH") for n in (
            "Maldoc_APT_OLE_JSRat", "Maldoc_APT10_MenuPass", "Maldoc_APT19_CVE-2017-0199",
            "Maldoc_Contains_VBE_File", "Maldoc_CVE_2017_11882", "Maldoc_CVE_2017_8759",
            "Maldoc_CVE-2017-0199", "Maldoc_DDE", "Maldoc_Dridex", "Maldoc_hancitor_dropper",
            "Maldoc_Hidden_PE_file", "Maldoc_malrtf_ole2link", "Maldoc_MIME_ActiveMime_b64", "Maldoc_PDF",
            "Maldoc_PowerPointMouse", "maldoc_somerules", "Maldoc_Suspicious_OLE_target", "Maldoc_UserForm",
            "Maldoc_VBA_macro_code", "Maldoc_Word_2007_XML_Flat_OPC")],
        ("packers/Javascript_exploit_and_obfuscation.yar", "HIGH"),
    ]),
    # NS8's additional_dbs (user.conf): loaded at every rating.
    "twinclams": ("https://raw.githubusercontent.com/twinwave-security/twinclams/master", [
        ("twinclams.ldb", "REQUIRED"), ("twinwave.ign2", "REQUIRED"),
    ]),
}

RATINGS: dict[str, tuple[str, ...]] = {
    "low": ("REQUIRED", "LOW", "LOWONLY", "LOWMEDIUMONLY"),
    "medium": ("REQUIRED", "LOW", "MEDIUM", "MEDIUMONLY", "LOWMEDIUMONLY"),
    "high": ("REQUIRED", "LOW", "MEDIUM", "HIGH"),
}


def local_name(path: str) -> str:
    """The file name clamd loads (yara rules come from sub-folders of their project)."""
    return path.rsplit("/", 1)[-1]


def selected(rating: str, mirror_url: str = "") -> list[dict[str, str]]:
    """The databases of `rating`: [{provider, file (local name), url, member}].

    `member` is the path inside the archive when `url` is a .tgz, else "". With a
    `mirror_url`, every file comes from <mirror_url>/<provider>/<path>.
    """
    out = []
    for provider, (mirror, files) in PROVIDERS.items():
        base = f"{mirror_url.rstrip('/')}/{provider}" if mirror_url else mirror
        for path, file_rating in files:
            if file_rating not in RATINGS[rating]:
                continue
            if mirror.endswith(".tgz"):
                url = f"{base}/{mirror.rsplit('/', 1)[-1]}" if mirror_url else base
                out.append({"provider": provider, "file": local_name(path), "url": url, "member": path})
            else:
                out.append({"provider": provider, "file": local_name(path), "url": f"{base}/{path}",
                            "member": ""})
    return out


def loaded(rating: str, official: bool) -> list[str]:
    """The third-party files clamd loads at `rating` (see the module doc for .ftm)."""
    return sorted(db["file"] for db in selected(rating) if official or not db["file"].endswith(".ftm"))


def render_context(antivirus: dict[str, Any]) -> list[dict[str, str]]:
    """The list the clamav image's update job reads (templates/clamav/third-party.list)."""
    return selected(antivirus["third_party_sigs_rating"], antivirus.get("mirror_url") or "")


def status(ctx) -> dict[str, Any]:
    """What clamd loads now and the last update's result, from the clamav container."""
    from .filter import _exec  # local: filter imports nothing from here

    listing = _exec(ctx, "clamav", ["/usr/local/bin/update-signatures", "--status"])
    try:
        found = json.loads(listing) if listing else {}
    except ValueError:
        found = {}
    last = found.get("last_update") or {}
    return {
        "databases": sorted(found.get("databases") or []),
        "signature_updates": {
            "time": last.get("time"), "result": last.get("result"),
            "message": last.get("message", "no update has run yet" if not last else ""),
            "failed": last.get("failed", []),
        },
    }
