"""reveal-master-credentials: the built-in master login, "<user>*vmail" with its generated password.

Applications (webmail, imapsync) use it to open any mailbox. It is not an LDAP user:
no password of a user of the user domain is ever shown.
"""

from mailctl.mailboxes import MASTER_PASSWORD_SECRET, MASTER_SEPARATOR, MASTER_USER
from mailctl.secrets import read_secret


def run(ctx, data):
    return {"username": MASTER_USER, "password": read_secret(ctx.instance, MASTER_PASSWORD_SECRET),
            "separator": MASTER_SEPARATOR}
