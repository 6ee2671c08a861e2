"""The testbed itself works: registries, auth, TLS, seeded digests, moto, dockerd."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from tests import imagegen
from tests.conftest import TAG_NEW, TAG_OLD, SeededVendor
from tests.testbed import (
    ECR_PASSWORD,
    ECR_USER,
    Dockerd,
    MotoServer,
    Registry,
    TestbedError,
    skopeo_digest,
    skopeo_inspect_raw,
    skopeo_list_tags,
)

pytestmark = pytest.mark.integration


def test_open_registry_answers(target_registry: Registry) -> None:
    status, headers, _ = target_registry.request("GET", "/v2/")
    assert status == 200
    assert headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    assert target_registry.host.startswith("127.0.0.1:")


def test_basic_auth(auth_registry: Registry) -> None:
    assert auth_registry.auth is not None
    user, password = auth_registry.auth
    status, headers, body = auth_registry.request("GET", "/v2/")
    assert status == 401
    assert headers["Www-Authenticate"].startswith("Basic")
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    assert auth_registry.request("GET", "/v2/", auth=(user, password + "x"))[0] == 401
    assert auth_registry.request("GET", "/v2/", auth=(user, password))[0] == 200


def test_added_user_is_accepted_without_restart(registry_factory) -> None:
    reg = registry_factory(auth=("first", "pw-1"))
    reg.add_user("second", "pw-2")
    import time

    deadline = time.monotonic() + 5
    while reg.request("GET", "/v2/", auth=("second", "pw-2"))[0] != 200:
        assert time.monotonic() < deadline, "registry did not pick up the new htpasswd user"
        time.sleep(0.1)


def test_tls_with_and_without_ca(tls_registry: Registry) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert tls_registry.ca_file is not None and tls_registry.cert_dir is not None
    assert [p.name for p in tls_registry.cert_dir.iterdir()] == ["ca.crt"]
    ctx = ssl.create_default_context(cafile=str(tls_registry.ca_file))
    with urllib.request.urlopen(tls_registry.url + "/v2/", context=ctx, timeout=10) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(tls_registry.url + "/v2/", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_seeded_digests_match_skopeo(seeded_vendor: SeededVendor) -> None:
    for tag in seeded_vendor.tags:
        for svc in seeded_vendor.services:
            got = skopeo_digest(seeded_vendor.ref(svc, tag), creds=seeded_vendor.auth)
            assert got == seeded_vendor.digests[tag][svc], (svc, tag)
    # other tests may add their own tags to the shared vendor registry: ours must all be there
    listed = skopeo_list_tags(f"{seeded_vendor.host}/{seeded_vendor.repo('api')}", creds=seeded_vendor.auth)
    assert set(seeded_vendor.tags) <= set(listed)


def test_seeded_shape(seeded_vendor: SeededVendor) -> None:
    raw = skopeo_inspect_raw(seeded_vendor.ref("api", TAG_OLD), creds=seeded_vendor.auth)
    index = json.loads(raw)
    assert index["mediaType"] == imagegen.OCI_INDEX
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]]
    assert ("linux", "amd64") in platforms and ("linux", "arm64") in platforms
    assert ("unknown", "unknown") in platforms
    director = json.loads(skopeo_inspect_raw(seeded_vendor.ref("director", TAG_OLD), creds=seeded_vendor.auth))
    assert director["mediaType"] == imagegen.DOCKER_MANIFEST
    webhooks = json.loads(skopeo_inspect_raw(seeded_vendor.ref("webhooks", TAG_OLD), creds=seeded_vendor.auth))
    assert webhooks["mediaType"] == imagegen.OCI_MANIFEST

    # The upgrade tag differs only in the app layer; base/runtime are shared across services.
    old, new = seeded_vendor.images[TAG_OLD], seeded_vendor.images[TAG_NEW]
    for svc in ("director", "writer"):
        assert old[svc].layer("app").digest != new[svc].layer("app").digest
        for kind in ("base", "runtime", "deps"):
            assert old[svc].layer(kind).digest == new[svc].layer(kind).digest
    assert old["director"].layer("base").digest == old["writer"].layer("base").digest
    assert old["director"].layer("runtime").digest == old["webhooks"].layer("runtime").digest
    assert old["director"].layer("runtime").digest != old["writer"].layer("runtime").digest
    # Deterministic: building again gives the same digests.
    assert imagegen.build_images(TAG_OLD)["api"].digest == seeded_vendor.digests[TAG_OLD]["api"]


def test_skopeo_oracle_errors(seeded_vendor: SeededVendor) -> None:
    with pytest.raises(TestbedError, match=r"unauthorized|authentication required"):
        skopeo_digest(seeded_vendor.ref("api", TAG_OLD))
    with pytest.raises(TestbedError):
        skopeo_digest(seeded_vendor.ref("api", "no-such-tag"), creds=seeded_vendor.auth)


def test_skopeo_tls_oracle(tls_registry: Registry) -> None:
    digests = imagegen.push_images(
        tls_registry.url, "tb-tls", "v1", services=("director",), ca_file=tls_registry.ca_file
    )
    ref = f"{tls_registry.host}/tb-tls/director:v1"
    assert skopeo_digest(ref, cert_dir=tls_registry.cert_dir) == digests["director"]
    with pytest.raises(TestbedError, match="certificate"):
        skopeo_digest(ref, tls_verify=True)


def test_oci_layout_readable_by_skopeo(tmp_path) -> None:
    images = imagegen.build_images(TAG_OLD, services=("api", "scheduler"), oci_services=("scheduler",))
    layout = imagegen.write_oci_layout(tmp_path / "layout", images)
    res = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:scheduler:{TAG_OLD}"], capture_output=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert imagegen.sha256(res.stdout) == images["scheduler"].digest


def test_moto_sts_and_ecr_token(aws_env: MotoServer) -> None:
    import base64

    import boto3

    sts = boto3.client("sts")
    assert sts.meta.endpoint_url == aws_env.endpoint
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:user/moto"
    ecr = boto3.client("ecr")
    token = ecr.get_authorization_token(registryIds=["513558712013"])["authorizationData"][0]
    assert base64.b64decode(token["authorizationToken"]).decode() == f"{ECR_USER}:{ECR_PASSWORD}"


def test_moto_auth_toggle(aws_env: MotoServer) -> None:
    import boto3
    from botocore.exceptions import ClientError

    aws_env.set_auth(True)
    try:
        with pytest.raises(ClientError) as info:
            boto3.client("iam").list_roles()
        assert info.value.response["Error"]["Code"] == "InvalidClientTokenId"
    finally:
        aws_env.reset()
    assert boto3.client("iam").list_roles()["Roles"] == []


def test_dockerd_answers(dockerd: Dockerd) -> None:
    import docker

    client = docker.DockerClient(base_url=dockerd.docker_host)
    try:
        version = client.version()
        assert version["Version"]
        assert client.info()["Driver"] == dockerd.storage_driver
    finally:
        client.close()


def test_registry_start_failure_is_reported(tmp_path) -> None:
    # A storage path that is a file: the registry cannot start, and the error says so quickly.
    bad = tmp_path / "not-a-dir"
    bad.write_text("x")
    with pytest.raises((TestbedError, OSError)):
        Registry(workdir=tmp_path / "reg", storage=bad, timeout=3)


def test_vendor_registry_accepts_moto_token(vendor_registry: Registry) -> None:
    assert vendor_registry.request("GET", "/v2/", auth=(ECR_USER, ECR_PASSWORD))[0] == 200
    assert vendor_registry.request("GET", "/v2/", auth=(ECR_USER, "wrong"))[0] == 401
