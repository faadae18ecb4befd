"""IPAM on etcd over mutual TLS: a real etcd that takes https clients with a certificate from multinet's CA only;
the store speaks it with MULTINET_TLS_DIR's material, and checks etcd's certificate for the name `multinet`."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import tls
from services.common.validate import FieldError
from services.ipam import build_ipam
from services.ipam.stores.etcd_client import EtcdClient, EtcdUnavailable
from tests.fixtures.etcd import EtcdServer, running_etcd
from tests.integration.ipam.conftest import etcd_url, serve
from tests.integration.ipam.test_grpc_api import allocate

pytestmark = pytest.mark.integration
RANGE = {"range": "10.0.0.0/24"}


@pytest.fixture
def material(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Iterator[Path]:
    tls.generate(workdir / "tls")
    directory = workdir / "tls" / tls.SERVICES  # IPAM's and etcd's role
    monkeypatch.setenv(tls.ENV, str(directory))
    tls.configured.cache_clear()
    yield directory
    tls.configured.cache_clear()


@pytest.fixture
def secure_etcd(material: Path) -> Iterator[EtcdServer]:
    with running_etcd(tls_dir=material) as server:
        yield server


async def test_allocations_go_to_etcd_over_mutual_tls(secure_etcd: EtcdServer, workdir: Path) -> None:
    assert secure_etcd.client_url.startswith("https://")
    url = etcd_url(secure_etcd)
    async with serve(url, workdir / "ipam.sock") as ipam:
        first = await ipam.stub.Allocate(allocate("blue", RANGE, "a"))
        assert first.allocations[0].address == "10.0.0.1/24"
    async with serve(url, workdir / "b.sock") as ipam:  # another replica: it reads the first one's over TLS
        assert (await ipam.stub.Allocate(allocate("blue", RANGE, "b"))).allocations[0].address == "10.0.0.2/24"


async def test_etcd_refuses_plaintext_and_certificates_of_another_ca(
    secure_etcd: EtcdServer, material: Path, workdir: Path
) -> None:
    tls.generate(workdir / "other")
    other = workdir / "other" / tls.SERVICES
    port = secure_etcd.client_url.rsplit(":", 1)[1]
    attempts = {
        "plaintext": EtcdClient([f"http://127.0.0.1:{port}"], timeout=2),
        "another CA's certificate": EtcdClient(
            [secure_etcd.client_url],
            timeout=2,
            tls=_mixed(trust=material, present=other),
            server_name=tls.SERVER_NAME,
        ),
        "a client trusting another CA": EtcdClient(
            [secure_etcd.client_url], timeout=2, tls=_mixed(trust=other, present=other), server_name=tls.SERVER_NAME
        ),
    }
    for what, client in attempts.items():
        try:
            with pytest.raises(EtcdUnavailable) as refused:
                await client.range(b"/x")
            if what == "a client trusting another CA":  # said as what it is: a TLS refusal, not an outage
                assert "TLS refused: unable to get local issuer certificate" in str(refused.value), refused.value
        except BaseException as exc:
            raise AssertionError(f"{what} was not refused") from exc
        finally:
            await client.close()
    good = EtcdClient(
        [secure_etcd.client_url], tls=tls.client_ssl_context(tls.load(material)), server_name=tls.SERVER_NAME
    )
    try:
        kvs, more, revision = await good.range(b"/x")
        assert (kvs, more) == ([], False) and revision > 0
    finally:
        await good.close()


def _mixed(trust: Path, present: Path) -> ssl.SSLContext:
    """Trusts `trust`'s CA, presents `present`'s certificate."""
    context = ssl.create_default_context(cafile=trust / "ca.crt")
    context.load_cert_chain(present / "tls.crt", present / "tls.key")
    return context


async def test_https_store_without_material_or_with_mixed_schemes_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(tls.ENV, raising=False)
    tls.configured.cache_clear()
    with pytest.raises(FieldError, match=tls.ENV):
        await build_ipam("etcd:https://127.0.0.1:2379")
    with pytest.raises(FieldError, match="all http:// or all https://"):
        await build_ipam("etcd:http://127.0.0.1:2379,https://127.0.0.1:2380")
