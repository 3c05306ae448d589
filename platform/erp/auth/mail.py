"""Invitation mail through SMTP_URL (`smtp://` with STARTTLS when offered, or
`smtps://`; `user:password@` to log in; `?from=` the sender). No Flask here."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("erp.auth.mail")
TIMEOUT = 10


def send_invitation(smtp_url: str, to: str, tenant_name: str, role: str, url: str) -> bool:
    """Send the invitation's link; False (logged, never raised) when the server fails:
    the link was returned to the inviter anyway."""
    parts = urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    sender = parse_qs(parts.query).get("from", [f"erp@{host}"])[0]
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = f"You are invited to {tenant_name}"
    msg.set_content(
        f"You were invited to {tenant_name} as {role}.\n\n"
        f"Open this link and sign in to accept (valid 7 days, once):\n{url}\n"
    )
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=TIMEOUT)
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls()
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("invitation mail not sent", extra={"error": type(exc).__name__})
        return False
    return True
