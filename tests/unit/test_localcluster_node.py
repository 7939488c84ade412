"""The local cluster's pieces that need neither root nor binaries: names, configs, routes."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from korder.localcluster import controlplane, images, node


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("korder:dev", "docker.io/library/korder:dev"),
        ("korder", "docker.io/library/korder:latest"),
        ("shop/korder:1.0", "docker.io/shop/korder:1.0"),
        ("localhost/korder:dev", "localhost/korder:dev"),
        ("registry.example:5000/korder", "registry.example:5000/korder:latest"),
        ("example.com/a/korder@sha256:abc", "example.com/a/korder@sha256:abc"),
    ],
)
def test_image_names_as_the_cri_spells_them(ref: str, expected: str) -> None:
    assert images.normalized(ref) == expected


def test_podman_keeps_a_bare_name_under_localhost() -> None:
    assert images.podman_name("korder:dev") == "localhost/korder:dev"
    assert images.podman_name("example.com/korder:1") == "example.com/korder:1"


def test_the_ranges_overlap_neither_one_another_nor_what_this_machine_routes() -> None:
    pods = ipaddress.ip_network(node.POD_CIDR)
    services = ipaddress.ip_network(controlplane.SERVICE_CIDR)
    assert not pods.overlaps(services)
    assert ipaddress.ip_address(node.NODE_IP) in pods
    for taken in ("10.88.0.0/16", "192.0.2.0/24", "127.0.0.0/8"):
        assert not pods.overlaps(ipaddress.ip_network(taken))
        assert not services.overlaps(ipaddress.ip_network(taken))


def test_pods_are_never_masqueraded_and_leases_stay_in_the_state(tmp_path: Path) -> None:
    config: dict[str, Any] = node._cni_config(tmp_path)
    bridge = config["plugins"][0]
    assert bridge["bridge"] == node.BRIDGE
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    json.dumps(config)  # what containerd reads


def test_the_kubelet_resolves_nothing_and_keeps_its_images(tmp_path: Path) -> None:
    config = node._kubelet_config(tmp_path, tmp_path / "ca.crt", 10250, 10248)
    assert config["address"] == node.NODE_IP
    assert config["resolvConf"] == str(tmp_path / "resolv.conf")
    assert "clusterDNS" not in config
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["authentication"] == {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": False},
        "x509": {"clientCAFile": str(tmp_path / "ca.crt")},
    }


def test_containerd_lives_in_the_state_folder(tmp_path: Path) -> None:
    text = node._containerd_config(tmp_path, "localhost/korder-pause:x")
    for key in ("root", "state", "address", "conf_dir", "Root"):
        values = [
            line.split("=", 1)[1].strip().strip('"')
            for line in text.splitlines()
            if line.strip().startswith(f"{key} =")
        ]
        # The debug and metrics endpoints are off (empty); every path is ours.
        paths = [v for v in values if v]
        assert paths, key
        assert all(v.startswith(str(tmp_path)) for v in paths), (key, paths)
    assert 'sandbox_image = "localhost/korder-pause:x"' in text
    assert "restrict_oom_score_adj = true" in text


def test_preflight_refuses_a_route_over_the_pod_range(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "10.244.0.0/16", "dev": "tun0"},
    ]

    def fake_run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 0, json.dumps(routes), "")

    monkeypatch.setattr("korder.localcluster.node.os.geteuid", lambda: 0)
    monkeypatch.setattr("korder.localcluster.node.shutil.which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(node, "_run", fake_run)
    with pytest.raises(node.ClusterError, match=r"10\.244\.0\.0/16 via tun0"):
        node.preflight()
    # Our own bridge's routes are ours.
    routes[1]["dev"] = node.BRIDGE
    node.preflight()
