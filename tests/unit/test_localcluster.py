"""The control-plane tooling's pieces that need no binaries."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from korder.localcluster import certificates, processes


def test_certificates_chain_to_the_ca(tmp_path: Path) -> None:
    files = certificates.generate(tmp_path)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(files.admin_cert.read_bytes())
    for cert in (server, admin):
        cert.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    orgs = admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert oct(files.admin_key.stat().st_mode)[-3:] == "600"


def test_kill_stale_kills_only_matching_processes(tmp_path: Path) -> None:
    marker = str(tmp_path / "state")
    matching = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile = tmp_path / "pids"
        pidfile.write_text(f"{matching.pid}\n{other.pid}\n999999999\n")
        processes.kill_stale(pidfile, marker)
        assert matching.wait(5) == -9
        assert other.poll() is None
        assert not pidfile.exists()
    finally:
        processes.stop([matching, other], timeout=5)


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    """A grandchild spawned through processes.spawn goes when its parent is SIGKILLed."""
    pidfile = tmp_path / "grandchild"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from korder.localcluster import processes\n"
        "p = processes.spawn([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{grandchild}").exists():
        status = Path(f"/proc/{grandchild}/status").read_text()
        if "State:\tZ" in status:
            break
        assert time.monotonic() < deadline, "the grandchild outlived its parent"
        time.sleep(0.05)
