"""A real RFC 3161 timestamp authority on 127.0.0.1, for tests and `LOCAL_TSA=1 make run`.

Each `POST /` (application/timestamp-query) is answered by OpenSSL's own `openssl ts -reply`
as application/timestamp-reply. On first start it makes its PKI in its directory: a root CA
(`root.pem`, what TSA_CA_FILE names), a TSA certificate signed by it with the critical
timeStamping extended key usage, `chain.pem` (TSA certificate + root) and the ts config
(policy 1.2.3.4.1, SHA-256, ESSCertIDv2 over the chain, accuracy 1 s, a serial file).

`.mode` makes it misbehave the way a TSA can, one fault at a time:
  ok           a good token;
  garbage      200 with bytes that are not a TimeStampResp;
  wrong-nonce  a good reply to the same query with another nonce;
  no-eku       signed by a certificate of the same root without the timeStamping usage
               (openssl refuses to sign with one, so openssl's token is signed again here);
  expired      signed by a certificate of the same root whose validity ended a year ago;
  untrusted    signed by a TSA whose chain ends at another root;
  down         HTTP 503;
  slow         a good token after `slow_seconds` (for client timeouts).

    python scripts/local_tsa.py --dir var/tsa --port 0   # prints "listening on http://…/"
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.server
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MODES = ("ok", "garbage", "wrong-nonce", "no-eku", "expired", "untrusted", "down", "slow")
POLICY = "1.2.3.4.1"

# The signer of each mode: its certificate, its key and its issuer (sent with the token).
SIGNERS = {
    "tsa": ("tsa.pem", "tsa.key", "root.pem"),
    "no-eku": ("no-eku.pem", "no-eku.key", "root.pem"),
    "expired": ("expired.pem", "expired.key", "root.pem"),
    "untrusted": ("untrusted.pem", "untrusted.key", "other-root.pem"),
}

TS_CONFIG = """\
[ tsa ]
default_tsa = local_tsa

[ local_tsa ]
serial = {directory}/serial
crypto_device = builtin
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = no
tsa_name = yes
ess_cert_id_chain = yes
ess_cert_id_alg = sha256
"""


class LocalTsa:
    """The TSA in `directory` (its PKI is made there once and kept)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.mode = "ok"
        self.slow_seconds = 5.0
        self.requests = 0
        self.url = ""
        self._server: http.server.ThreadingHTTPServer | None = None
        self._lock = threading.Lock()  # openssl ts updates one serial file

    @property
    def ca_file(self) -> Path:
        return self.directory / "root.pem"

    @property
    def chain_file(self) -> Path:
        return self.directory / "chain.pem"

    def start(self, port: int = 0) -> str:
        make_pki(self.directory)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, query: bytes) -> tuple[int, bytes]:
        """The HTTP status and body this TSA sends back for a query, in its current mode."""
        mode = self.mode
        self.requests += 1
        if mode == "down":
            return 503, b"timestamping is down for maintenance\n"
        if mode == "garbage":
            return 200, b"\x30\x03not a TimeStampResp" + secrets.token_bytes(16)
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "wrong-nonce":
            query = _with_other_nonce(query)
        signer = mode if mode in ("no-eku", "expired", "untrusted") else "tsa"
        # openssl refuses a signer without the timeStamping usage: sign with the good one
        # and put the no-EKU signature in its place afterwards.
        reply = self._openssl_reply(query, "tsa" if signer == "no-eku" else signer)
        if signer == "no-eku":
            reply = _sign_again(reply, self.directory, SIGNERS["no-eku"])
        return 200, reply

    def _openssl_reply(self, query: bytes, signer: str) -> bytes:
        cert, key, issuer = (str(self.directory / name) for name in SIGNERS[signer])
        with tempfile.TemporaryDirectory() as tmp, self._lock:
            query_file, reply_file = Path(tmp, "query.tsq"), Path(tmp, "reply.tsr")
            query_file.write_bytes(query)
            subprocess.run(
                [
                    "openssl", "ts", "-reply", "-config", str(self.directory / "ts.cnf"),
                    "-queryfile", str(query_file), "-inkey", key, "-signer", cert,
                    "-chain", issuer, "-out", str(reply_file),
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            return reply_file.read_bytes()


def _handler(tsa: LocalTsa) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Type") != "application/timestamp-query":
                status, body, kind = 415, b"send application/timestamp-query\n", "text/plain"
            else:
                try:
                    status, body = tsa.answer(query)
                except subprocess.CalledProcessError as failed:
                    status, body = 400, failed.stderr or b"openssl ts -reply failed\n"
                ok = status == 200
                kind = "application/timestamp-reply" if ok else "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stdout
            pass

    return Handler


def _with_other_nonce(query: bytes) -> bytes:
    request = tsp.TimeStampReq.load(query)
    request["nonce"] = int.from_bytes(secrets.token_bytes(8), "big")
    return request.dump(force=True)


def _sign_again(reply: bytes, directory: Path, signer: tuple[str, str, str]) -> bytes:
    """openssl's reply with its SignerInfo signed again by another certificate and key."""
    cert_path, key_path, issuer_path = (directory / name for name in signer)
    cert = asn1_x509.Certificate.load(_der(cert_path.read_bytes()))
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    response = tsp.TimeStampResp.load(reply)
    signed = response["time_stamp_token"]["content"]
    info = signed["signer_infos"][0]
    ess = tsp.SigningCertificateV2({"certs": [{"cert_hash": hashlib.sha256(cert.dump()).digest()}]})
    attributes = cms.CMSAttributes(
        [a for a in info["signed_attrs"] if a["type"].native != "signing_certificate_v2"]
        + [cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]})]
    )
    signature = key.sign(attributes.dump(), padding.PKCS1v15(), hashes.SHA256())
    new_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": info["digest_algorithm"],
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    issuer = asn1_x509.Certificate.load(_der(issuer_path.read_bytes()))
    new_signed = cms.SignedData(
        {
            "version": signed["version"],
            "digest_algorithms": signed["digest_algorithms"],
            "encap_content_info": signed["encap_content_info"],
            "certificates": [cms.CertificateChoices({"certificate": c}) for c in (cert, issuer)],
            "signer_infos": [new_info],
        }
    )
    token = cms.ContentInfo({"content_type": "signed_data", "content": new_signed})
    return tsp.TimeStampResp({"status": response["status"], "time_stamp_token": token}).dump()


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------- the PKI


def make_pki(directory: Path) -> None:
    """Root, TSA and fault certificates and the ts config, unless `directory` has them."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ts.cnf").exists():
        return
    now = dt.datetime.now(dt.UTC)
    year = dt.timedelta(days=365)
    root = _issue(
        directory, "root", "ClientWindow local TSA root", None, now - year, now + 10 * year
    )
    other = _issue(directory, "other-root", "Another TSA root", None, now - year, now + 10 * year)
    _issue(directory, "tsa", "ClientWindow local TSA", root, now - year, now + 5 * year)
    _issue(
        directory, "no-eku", "TSA without timeStamping", root, now - year, now + 5 * year, eku=False
    )
    _issue(directory, "expired", "Expired TSA", root, now - 2 * year, now - year)
    _issue(directory, "untrusted", "TSA of another root", other, now - year, now + 5 * year)
    chain = (directory / "tsa.pem").read_bytes() + (directory / "root.pem").read_bytes()
    (directory / "chain.pem").write_bytes(chain)
    (directory / "serial").write_text("01\n")
    (directory / "ts.cnf").write_text(TS_CONFIG.format(directory=directory, policy=POLICY))


Issued = tuple[x509.Certificate, rsa.RSAPrivateKey]


def _issue(
    directory: Path,
    name: str,
    common_name: str,
    issuer: Issued | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    eku: bool = True,
) -> Issued:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False)
    else:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True)
        if eku:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
    builder = builder.add_extension(
        x509.KeyUsage(
            content_commitment=issuer_cert is not None, key_encipherment=False,
            data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False, **usage,
        ),
        critical=True,
    )  # fmt: skip
    cert = builder.sign(issuer_key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{name}.key").chmod(0o600)
    return cert, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the PKI is kept")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args()
    tsa = LocalTsa(args.dir.resolve())
    tsa.mode = args.mode
    url = tsa.start(args.port)
    print(f"listening on {url}", flush=True)  # noqa: T201
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    tsa.stop()


if __name__ == "__main__":
    main()
