"""@context handling: term expansion and compaction, the context store, remote fetching, Link headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from cityhub.hub.broker.context import (
    CORE_CONTEXT_URL,
    DEFAULT_VOCAB,
    ContextStore,
    LdContextNotAvailable,
    link_header,
    parse_link_header,
)
from cityhub.kit.errors import AlreadyExists, BadRequestData, NotFound

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DATA = Path(__file__).parent / "data"
SUITE_ROOT = "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/"
SUITE = SUITE_ROOT + "ngsi-ld-test-suite.jsonld"
COMPOUND = SUITE_ROOT + "ngsi-ld-test-suite-compound.jsonld"


@pytest.fixture
async def store() -> AsyncIterator[ContextStore]:
    contexts = ContextStore(
        {COMPOUND: DATA / "ngsi-ld-test-suite-compound.jsonld", SUITE: DATA / "ngsi-ld-test-suite.jsonld"},
        fetch_timeout=0.5,
        max_document_size=4096,
    )
    yield contexts
    await contexts.aclose()


@dataclass
class ContextServer:
    """A real HTTP/1.1 server on 127.0.0.1 answering fixed responses per path, counting requests."""

    base: str = ""
    routes: dict[str, tuple[int, bytes, float]] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def serve(self, path: str, body: object, *, status: int = 200, delay: float = 0.0) -> str:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        self.routes[path] = (status, raw, delay)
        return self.base + path

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            self.hits[path] += 1
            status, body, delay = self.routes.get(path, (404, b"not here", 0.0))
            await asyncio.sleep(delay)
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)


@pytest.fixture
async def server() -> AsyncIterator[ContextServer]:
    served = ContextServer()
    listener = await asyncio.start_server(served.handle, "127.0.0.1", 0)
    served.base = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener:
        yield served
        for task in list(served.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- terms -----------------------------------------------------------------------------------------


async def test_core_terms_expand_and_compact(store: ContextStore) -> None:
    ctx = await store.resolve(None)
    assert ctx.urls == [CORE_CONTEXT_URL]
    assert ctx.expand("location") == NGSI_LD + "location"
    assert ctx.expand("Property") == NGSI_LD + "Property"
    assert ctx.expand("value") == NGSI_LD + "hasValue"
    assert ctx.expand("Point") == "https://purl.org/geojson/vocab#Point"
    assert ctx.expand("type") == "@type"
    assert ctx.compact(NGSI_LD + "hasObject") == "object"
    assert ctx.compact(NGSI_LD + "location") == "location"
    assert ctx.definitions["objectType"].type == "@vocab"


async def test_undefined_terms_use_the_default_vocab(store: ContextStore) -> None:
    ctx = await store.resolve(None)
    assert ctx.expand("temperature") == DEFAULT_VOCAB + "temperature"
    assert ctx.compact(DEFAULT_VOCAB + "temperature") == "temperature"
    assert ctx.compact("https://example.org/unknown") == "https://example.org/unknown"


@pytest.mark.parametrize("version", ["", "-v1.3", "-v1.6", "-v1.7", "-v1.8", "-v1.9"])
async def test_every_core_address_is_the_shipped_core(store: ContextStore, version: str) -> None:
    url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context{version}.jsonld"
    ctx = await store.resolve(url)  # nothing is fetched: this machine has no way out
    assert ctx.expand("observedAt") == NGSI_LD + "observedAt"
    assert ctx.urls == [url]
    assert store.get(url).url == CORE_CONTEXT_URL


async def test_core_terms_cannot_be_overridden(store: ContextStore) -> None:
    ctx = await store.resolve(
        {"location": "https://example.org/where", "speed": "https://example.org/speed", "type": "@id"}
    )
    assert ctx.expand("location") == NGSI_LD + "location"
    assert ctx.expand("type") == "@type"
    assert ctx.expand("speed") == "https://example.org/speed"
    assert ctx.compact("https://example.org/speed") == "speed"


async def test_a_user_term_claims_its_name_from_the_default_vocab(store: ContextStore) -> None:
    ctx = await store.resolve({"temperature": "https://example.org/temperature"})
    assert ctx.expand("temperature") == "https://example.org/temperature"
    assert ctx.compact("https://example.org/temperature") == "temperature"
    # the name is taken: JSON-LD falls back to a compact IRI with the core's ngsi-ld: prefix
    assert ctx.compact(DEFAULT_VOCAB + "temperature") == "ngsi-ld:default-context/temperature"
    assert ctx.expand("ngsi-ld:default-context/temperature") == DEFAULT_VOCAB + "temperature"
    assert ctx.compact("https://example.com/other") == "https://example.com/other"  # no prefix: whole


async def test_user_vocab_survives_the_core_context(store: ContextStore) -> None:
    ctx = await store.resolve([{"@vocab": "https://example.org/terms/"}, CORE_CONTEXT_URL])
    assert ctx.expand("speed") == "https://example.org/terms/speed"
    assert ctx.compact("https://example.org/terms/speed") == "speed"
    assert ctx.compact(DEFAULT_VOCAB + "speed") == "ngsi-ld:default-context/speed"
    assert ctx.expand("location") == NGSI_LD + "location"


async def test_prefixes_and_compact_iris(store: ContextStore) -> None:
    ctx = await store.resolve(
        {
            "brand": "ex:brand",  # uses a prefix defined after it in the same object
            "ex": "https://example.org/ns#",
            "kind": {"@id": "ex:kind", "@type": "@vocab", "@container": "@set"},
            "model": {"@type": "ex:Text"},
            "here": "ngsi-ld:here",  # the core's prefix serves user contexts
            "opaque": {"@id": "https://example.org/opaque/", "@prefix": False},
        }
    )
    assert ctx.expand("brand") == "https://example.org/ns#brand"
    assert ctx.expand("kind") == "https://example.org/ns#kind"
    assert ctx.definitions["kind"].type == "@vocab"
    assert ctx.expand("model") == DEFAULT_VOCAB + "model"
    assert ctx.expand("here") == NGSI_LD + "here"
    assert ctx.expand("ex:other") == "https://example.org/ns#other"
    assert ctx.expand("ngsi-ld:foo") == NGSI_LD + "foo"
    assert ctx.expand("opaque:x") == "opaque:x"
    assert ctx.compact("https://example.org/ns#other") == "ex:other"  # JSON-LD compact IRI
    assert ctx.compact("https://example.org/opaque/x") == "https://example.org/opaque/x"  # @prefix false


async def test_absolute_iris_are_used_as_they_are(store: ContextStore) -> None:
    ctx = await store.resolve({"https": "https://wrong.example/"})
    for iri in ("https://example.org/attr", "urn:ngsi-ld:attr:x", "http://example.org/a#b"):
        assert ctx.expand(iri) == iri
        assert ctx.compact(iri) == iri


async def test_terms_mapped_to_each_other(store: ContextStore) -> None:
    ctx = await store.resolve({"a": "b", "b": "https://example.org/b", "self": "self"})
    assert ctx.expand("a") == "https://example.org/b"
    assert ctx.expand("self") == DEFAULT_VOCAB + "self"
    assert ctx.compact("https://example.org/b") == "a"  # shortest, then first in order
    with pytest.raises(BadRequestData, match="cyclic"):
        await store.resolve({"a": "b", "b": "a"})


async def test_arrays_apply_in_order_and_null_resets(store: ContextStore) -> None:
    one, two = {"x": "https://one.example/x"}, {"x": "https://two.example/x"}
    assert (await store.resolve([one, two])).expand("x") == "https://two.example/x"
    assert (await store.resolve([two, one])).expand("x") == "https://one.example/x"
    reset = await store.resolve([one, None, {"y": "https://one.example/y"}])
    assert reset.expand("x") == DEFAULT_VOCAB + "x"
    assert reset.expand("y") == "https://one.example/y"
    assert reset.expand("location") == NGSI_LD + "location"


@pytest.mark.parametrize(
    "value",
    [42, [["https://example.org/c.jsonld"]], [True], {"a": 5}, {"a": {"@id": 5}}, {"@vocab": 5}, ""],
)
async def test_malformed_contexts_are_bad_request_data(store: ContextStore, value: object) -> None:
    with pytest.raises(BadRequestData):
        await store.resolve(value)


async def test_a_name_that_is_no_url_is_bad_request_data(store: ContextStore) -> None:
    with pytest.raises(BadRequestData, match="ContextURI"):
        await store.resolve("ContextURI")


# -- the conformance suite's contexts, preloaded ---------------------------------------------------


async def test_preloaded_compound_context_of_the_test_suite(store: ContextStore) -> None:
    ctx = await store.resolve(COMPOUND)
    assert ctx.urls == [COMPOUND]
    assert ctx.expand("Building") == "https://ngsi-ld-test-suite/context#Building"
    assert ctx.expand("airQualityLevel") == "https://ngsi-ld-test-suite/context#airQualityLevel"
    assert ctx.compact("https://ngsi-ld-test-suite/context#almostFull") == "almostFull"
    assert ctx.expand("location") == NGSI_LD + "location"
    assert ctx.expand("unknownThing") == DEFAULT_VOCAB + "unknownThing"
    assert store.get(SUITE).hits == 1
    assert {entry.url for entry in store.list("Cached")} == {CORE_CONTEXT_URL, COMPOUND, SUITE}


async def test_a_deleted_preloaded_context_is_read_from_its_file_again(store: ContextStore) -> None:
    """Preloading says where a URL is read from: removing the cached copy does not make the URL
    unreachable (an offline hub would otherwise lose it until restart)."""
    first = await store.resolve(SUITE)
    store.remove(SUITE)
    assert SUITE not in {entry.url for entry in store.list("Cached")}
    again = await store.resolve(SUITE)
    assert (
        again.expand("Building") == first.expand("Building") == "https://ngsi-ld-test-suite/context#Building"
    )
    assert store.get(SUITE).kind == "Cached"


def test_a_preloaded_file_must_be_a_context_document(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonld"
    bad.write_text('{"A1": "urn:a1"}')
    with pytest.raises(ValueError, match="no @context member"):
        ContextStore({"https://example.org/bad.jsonld": bad})


# -- cache -----------------------------------------------------------------------------------------


async def test_resolving_the_same_value_again_returns_the_cached_active_context(store: ContextStore) -> None:
    assert await store.resolve(COMPOUND) is await store.resolve(COMPOUND)
    assert await store.resolve(None) is await store.resolve(None)
    first = await store.resolve([{"a": "https://e/a", "b": "https://e/b"}, COMPOUND])
    assert first is await store.resolve([{"b": "https://e/b", "a": "https://e/a"}, COMPOUND])
    assert store.get(COMPOUND).hits == 4


# -- hosted contexts (/jsonldContexts) -------------------------------------------------------------


async def test_hosted_contexts_are_added_listed_and_removed(store: ContextStore) -> None:
    url = "http://127.0.0.1:1/ngsi-ld/v1/jsonldContexts/ctx-1"  # nothing listens on port 1
    hosted = store.add(url, {"@context": {"A1": "urn:ngsi-ld:attributes:A1"}}, local_id="ctx-1")
    assert store.get("ctx-1") is hosted
    assert [entry.url for entry in store.list("Hosted")] == [url]
    ctx = await store.resolve(url)
    assert ctx.expand("A1") == "urn:ngsi-ld:attributes:A1"
    # The same hosted context under another of the hub's addresses is not fetched either.
    other = await store.resolve("http://localhost:8000/ngsi-ld/v1/jsonldContexts/ctx-1")
    assert other.expand("A1") == "urn:ngsi-ld:attributes:A1"
    details = hosted.details()
    assert details.keys() == {"URL", "localId", "kind", "createdAt", "lastUsage", "numberOfHits"}
    assert (details["kind"], details["numberOfHits"]) == ("Hosted", 2)
    assert details["createdAt"].endswith("Z")

    with pytest.raises(AlreadyExists):
        store.add(url, {"@context": {}})
    with pytest.raises(BadRequestData, match="only Cached"):
        await store.reload(url)

    assert store.remove("ctx-1") is hosted
    with pytest.raises(NotFound):
        store.get(url)
    with pytest.raises(LdContextNotAvailable, match=url):
        await store.resolve(url)  # the cached active context went with it


@pytest.mark.parametrize(
    "document",
    [{"A1": "urn:a1"}, [], {"@context": 3}, {"@context": {"A1": 3}}, {"@context": [{"a": "b", "b": "a"}]}],
)
async def test_a_hosted_document_is_checked_when_added(store: ContextStore, document: object) -> None:
    with pytest.raises(BadRequestData):
        store.add("https://example.org/x.jsonld", document)


async def test_the_core_context_cannot_be_removed(store: ContextStore) -> None:
    with pytest.raises(BadRequestData, match="core"):
        store.remove("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld")
    with pytest.raises(NotFound):
        store.remove("no-such-context")
    assert (await store.reload(CORE_CONTEXT_URL)).kind == "Cached"


async def test_a_context_including_itself_is_refused(store: ContextStore) -> None:
    store.add("https://example.org/a.jsonld", {"@context": ["https://example.org/b.jsonld", {"x": "urn:x"}]})
    store.add("https://example.org/b.jsonld", {"@context": ["https://example.org/a.jsonld"]})
    with pytest.raises(BadRequestData, match=r"a\.jsonld includes itself"):
        await store.resolve("https://example.org/a.jsonld")


async def test_import_merges_a_context_under_the_local_terms(store: ContextStore) -> None:
    ctx = await store.resolve({"@import": SUITE, "speed": "https://example.org/speed"})
    assert ctx.expand("Building") == "https://ngsi-ld-test-suite/context#Building"
    assert ctx.expand("speed") == "https://example.org/speed"
    with pytest.raises(BadRequestData, match="single object"):
        await store.resolve({"@import": COMPOUND})


async def test_nesting_is_limited(store: ContextStore) -> None:
    for level in range(12):
        store.add(
            f"https://example.org/{level}.jsonld", {"@context": f"https://example.org/{level + 1}.jsonld"}
        )
    store.add("https://example.org/12.jsonld", {"@context": {"deep": "urn:deep"}})
    with pytest.raises(BadRequestData, match="nested"):
        await store.resolve("https://example.org/0.jsonld")
    assert (await store.resolve("https://example.org/5.jsonld")).expand("deep") == "urn:deep"


# -- remote contexts -------------------------------------------------------------------------------


async def test_a_remote_context_is_fetched_once_and_cached(
    store: ContextStore, server: ContextServer
) -> None:
    url = server.serve("/ctx.jsonld", {"@context": {"speed": "https://example.org/speed"}})
    nested = server.serve("/nested.jsonld", {"@context": [url, {"extra": "https://example.org/extra"}]})
    ctx = await store.resolve(url)
    assert ctx.expand("speed") == "https://example.org/speed"
    assert await store.resolve(url) is ctx
    both = await store.resolve([nested, {"local": "urn:local"}])
    assert (both.expand("speed"), both.expand("extra"), both.expand("local")) == (
        "https://example.org/speed",
        "https://example.org/extra",
        "urn:local",
    )
    assert both.urls == [nested]
    assert server.hits == {"/ctx.jsonld": 1, "/nested.jsonld": 1}
    cached = store.get(url)
    assert (cached.kind, cached.hits) == ("Cached", 3)


async def test_concurrent_requests_fetch_once(store: ContextStore, server: ContextServer) -> None:
    url = server.serve("/slowish.jsonld", {"@context": {"speed": "urn:speed"}}, delay=0.1)
    contexts = await asyncio.gather(*(store.resolve([url, {"n": f"urn:{n}"}]) for n in range(5)))
    assert [ctx.expand("speed") for ctx in contexts] == ["urn:speed"] * 5
    assert server.hits["/slowish.jsonld"] == 1


@pytest.mark.parametrize(
    ("status", "body", "delay", "why"),
    [
        (404, b"not found", 0.0, "HTTP 404"),
        (200, b"<html>hello</html>", 0.0, "not JSON"),
        (200, b'{"A1": "urn:a1"}', 0.0, "no @context"),
        (200, b'{"@context": 3}', 0.0, "not a JSON-LD context"),
        (200, b'{"@context": {"pad": "' + b"x" * 5000 + b'"}}', 0.0, "larger than 4096 bytes"),
        (200, b'{"@context": {}}', 2.0, "timed out"),
    ],
)
async def test_an_unusable_remote_context_is_ld_context_not_available(
    store: ContextStore, server: ContextServer, status: int, body: bytes, delay: float, why: str
) -> None:
    url = server.serve("/bad.jsonld", body, status=status, delay=delay)
    with pytest.raises(LdContextNotAvailable) as caught:
        await store.resolve(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld", url])
    assert url in caught.value.detail
    assert why in caught.value.detail
    problem = caught.value.to_problem()
    assert (problem["status"], problem["type"]) == (
        503,
        "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable",
    )


async def test_an_unreachable_server_is_ld_context_not_available(store: ContextStore) -> None:
    with pytest.raises(LdContextNotAvailable, match=r"http://127\.0\.0\.1:1/c\.jsonld"):
        await store.resolve("http://127.0.0.1:1/c.jsonld")


async def test_an_expired_context_is_fetched_again_or_kept_when_that_fails(
    server: ContextServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = ContextStore(ttl=0.05)
    try:
        url = server.serve("/ttl.jsonld", {"@context": {"speed": "urn:one"}})
        assert (await store.resolve(url)).expand("speed") == "urn:one"
        server.serve("/ttl.jsonld", {"@context": {"speed": "urn:two"}})
        await asyncio.sleep(0.1)
        assert (await store.resolve(url)).expand("speed") == "urn:two"
        server.serve("/ttl.jsonld", b"gone", status=500)
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="cityhub.hub.broker.context"):
            assert (await store.resolve(url)).expand("speed") == "urn:two"
        assert "stale" in caplog.text
        assert server.hits["/ttl.jsonld"] == 3
        with pytest.raises(LdContextNotAvailable, match="HTTP 500"):
            await store.reload(url)
        assert store.get(url).document == {"@context": {"speed": "urn:two"}}
    finally:
        await store.aclose()


# -- Link header -----------------------------------------------------------------------------------


def test_link_header_round_trip() -> None:
    header = link_header(COMPOUND)
    assert header == f'<{COMPOUND}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    assert parse_link_header(header) == COMPOUND


@pytest.mark.parametrize(
    ("header", "url"),
    [
        (None, None),
        ("", None),
        ('<https://e.org/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context"', "https://e.org/c.jsonld"),
        ("<https://e.org/c.jsonld>;rel=http://www.w3.org/ns/json-ld#context", "https://e.org/c.jsonld"),
        (
            '<https://e.org/p?a=1,2>; rel="next", <https://e.org/c.jsonld> ; TYPE="application/ld+json"; '
            'rel="alternate http://www.w3.org/ns/json-ld#context"',
            "https://e.org/c.jsonld",
        ),
        ('<https://e.org/p2>; rel="next"', None),
    ],
)
def test_parse_link_header(header: str | None, url: str | None) -> None:
    assert parse_link_header(header) == url


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("https://e.org/c.jsonld", "malformed"),
        ('<https://e.org/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context" garbage', "malformed"),
        ('<https://e.org/c.jsonld>; rel="unterminated', "malformed"),
        ('<https://e.org/c.jsonld>; type="application/ld+json"', "without rel"),
        ('<https://e.org/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; type="text/html"', "type"),
        ('<>; rel="http://www.w3.org/ns/json-ld#context"', "empty URL"),
        (
            '<https://e.org/a>; rel="http://www.w3.org/ns/json-ld#context", '
            '<https://e.org/b>; rel="http://www.w3.org/ns/json-ld#context"',
            "more than one",
        ),
    ],
)
def test_a_malformed_link_header_is_bad_request_data(header: str, why: str) -> None:
    with pytest.raises(BadRequestData, match=why):
        parse_link_header(header)
