#!/usr/bin/python3
"""A stand-in SMTP server for keyrotd's email tests (tests/integration/notify_test.py),
on Debian's python3-aiosmtpd: STARTTLS with a throw-away certificate the test
makes (make_cert), AUTH LOGIN and PLAIN against one user, and a script of
answers to RCPT TO (e.g. 451 then accept, or 550 for an address).

    srv = SmtpServer(workdir, user="keyrotd", password="pw")   # STARTTLS + AUTH
    srv = SmtpServer(workdir, starttls=False)                    # no STARTTLS offered
    srv.rcpt_script = ["451 4.3.0 try later"]   # the next RCPT answers, then accept
    srv.reject["gone@x.example"] = "550 5.1.1 no such user"
    srv.messages  ->  [{"from", "rcpt", "data" (bytes), "tls", "authenticated"}]

Run alone (python3 smtp_server.py DIR) it serves until interrupted and prints its port.
"""
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def make_cert(workdir):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
    keyrotd trusts it through caFile."""
    cert = os.path.join(workdir, "smtp-cert.pem")
    key = os.path.join(workdir, "smtp-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(self, workdir, starttls=True, user=None, password=None, port=None):
        self.messages = []
        self.rcpt_script = []     # answers for the next RCPTs, in order ("250 ..." accepts)
        self.reject = {}          # address -> answer, every time
        self.rcpts_seen = []      # every RCPT TO, answered or not
        self.rcpt_log = []        # (address, answer, time) of each
        self.auth_attempts = []   # (mechanism, login, ok)
        self.lock = threading.Lock()
        self.cert = None
        tls_context = None
        if starttls:
            self.cert, key = make_cert(workdir)
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(self.cert, key)
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                with outer.lock:
                    outer.rcpts_seen.append(address)
                    answer = outer.reject.get(address.lower())
                    if answer is None and outer.rcpt_script:
                        answer = outer.rcpt_script.pop(0)
                    outer.rcpt_log.append((address, answer or "250 OK", time.time()))
                if answer and not answer.startswith("2"):
                    return answer
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                with outer.lock:
                    outer.messages.append({
                        "from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                        "data": envelope.original_content or envelope.content,
                        "tls": session.ssl is not None,
                        "authenticated": bool(session.authenticated), "at": time.time()})
                return "250 2.0.0 accepted"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and user is not None
                  and auth_data.login == user.encode() and auth_data.password == password.encode())
            with outer.lock:
                outer.auth_attempts.append((mechanism, getattr(auth_data, "login", None), ok))
            return AuthResult(success=ok, handled=False)

        kwargs = {}
        if user is not None:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
        self.port = port or free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     tls_context=tls_context, require_starttls=starttls,
                                     **kwargs)
        self.controller.start()

    def url(self, scheme="smtp"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def got(self):
        with self.lock:
            return list(self.messages)

    def stop(self):
        self.controller.stop()


if __name__ == "__main__":
    srv = SmtpServer(sys.argv[1] if len(sys.argv) > 1 else ".", user="keyrotd", password="pw")
    print("listening on 127.0.0.1:%d (STARTTLS, AUTH keyrotd/pw; cert %s)" % (srv.port, srv.cert))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
