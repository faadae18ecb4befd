"""IPAM on etcd over mutual TLS: a real etcd that takes https clients with a certificate from multinet's CA only;
the store speaks it with MULTINET_TLS_DIR's material, and checks etcd's certificate for the name `multinet`."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import tls
from services.common.validate import FieldError
from services.ipam import build_ipam
from services.ipam.stores.etcd_client import EtcdClient, EtcdUnavailable
from tests.fixtures.etcd import EtcdServer, running_etcd
from tests.fixtures.tls import use
from tests.integration.ipam.conftest import etcd_url, serve
from tests.integration.ipam.test_grpc_api import allocate

pytestmark = pytest.mark.integration
RANGE = {"range": "10.0.0.0/24"}


@pytest.fixture
def secure_etcd(tls_material: Path) -> Iterator[EtcdServer]:
    with running_etcd(tls_dir=tls_material) as server:
        yield server


async def test_allocations_go_to_etcd_over_mutual_tls(secure_etcd: EtcdServer, workdir: Path) -> None:
    assert secure_etcd.client_url.startswith("https://")
    url = etcd_url(secure_etcd)
    async with serve(url, workdir / "ipam.sock") as ipam:
        first = await ipam.stub.Allocate(allocate("blue", RANGE, "a"))
        assert first.allocations[0].address == "10.0.0.1/24"
    async with serve(url, workdir / "b.sock") as ipam:  # another replica: it reads the first one's over TLS
        assert (await ipam.stub.Allocate(allocate("blue", RANGE, "b"))).allocations[0].address == "10.0.0.2/24"


@pytest.mark.parametrize(
    ("attempt", "said"),
    [
        ("plaintext", "ServerDisconnectedError"),
        ("another CA's client certificate", "alert bad certificate"),  # etcd's refusal, seen by the client
        ("a client trusting another CA", "TLS refused: unable to get local issuer certificate"),  # not an outage
        ("the material's own", None),
    ],
)
async def test_etcd_takes_only_clients_of_its_ca_that_trust_it(
    secure_etcd: EtcdServer, tls_material: Path, tmp_path: Path, attempt: str, said: str | None
) -> None:
    tls.generate(tmp_path / "other")
    other = tmp_path / "other" / tls.SERVICES
    contexts = {
        "another CA's client certificate": _mixed(trust=tls_material, present=other),
        "a client trusting another CA": _mixed(trust=other, present=other),
        "the material's own": tls.client_ssl_context(tls.load(tls_material)),
    }
    if attempt == "plaintext":
        client = EtcdClient([secure_etcd.client_url.replace("https://", "http://")], timeout=2)
    else:
        client = EtcdClient([secure_etcd.client_url], timeout=2, tls=contexts[attempt], server_name=tls.SERVER_NAME)
    try:
        if said is None:
            kvs, more, revision = await client.range(b"/x")
            assert (kvs, more) == ([], False) and revision > 0
        else:
            with pytest.raises(EtcdUnavailable) as refused:
                await client.range(b"/x")
            assert re.search(re.escape(said), str(refused.value)), refused.value
    finally:
        await client.close()


def _mixed(trust: Path, present: Path) -> ssl.SSLContext:
    """Trusts `trust`'s CA, presents `present`'s certificate."""
    context = ssl.create_default_context(cafile=trust / "ca.crt")
    context.load_cert_chain(present / "tls.crt", present / "tls.key")
    return context


async def test_https_store_without_material_or_with_mixed_schemes_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use(monkeypatch, None)
    with pytest.raises(FieldError, match=tls.ENV):
        await build_ipam("etcd:https://127.0.0.1:2379")
    with pytest.raises(FieldError, match="all http:// or all https://"):
        await build_ipam("etcd:http://127.0.0.1:2379,https://127.0.0.1:2380")
