"""JSON-LD @context handling for NGSI-LD: term-level only, as Orion-LD does.

Entity types and attribute names (terms) are mapped to IRIs and back; values are never expanded, so
no JSON-LD library is needed. Differences from a full JSON-LD 1.1 processor, all deliberate:

* The core context is applied first (its prefixes such as ``ngsi-ld:`` serve user contexts) and again
  last, so its terms always win: NGSI-LD core terms cannot be overridden. Its ``@vocab`` (the
  default-context namespace) is only the fallback: a user ``@vocab`` is never replaced by it.
* Scoped contexts, ``@reverse``, ``@container``, ``@language`` and ``@base`` are ignored; ``@type`` of
  a term definition is kept as given (``TermDefinition.type``), e.g. ``"@vocab"`` for VocabProperty.
* Any term may serve as a prefix (JSON-LD 1.0 behaviour) unless its definition says ``"@prefix": false``.
* A term containing ``:`` whose prefix is not defined is an absolute IRI and is used as it is.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import httpx
import orjson

from cityhub.kit.errors import NGSI_LD_ERRORS, AlreadyExists, BadRequestData, HubError, NotFound
from cityhub.kit.ids import new_id
from cityhub.kit.time import isoformat, utcnow

log = logging.getLogger(__name__)

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
JSONLD_MEDIA_TYPE = "application/ld+json"
MAX_DEPTH = 10

_CORE_URL = re.compile(r"https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context(?:-v\d+(?:\.\d+)*)?\.jsonld")
_RETRY_AFTER = 60.0  # seconds before a failed refresh of a cached context is tried again

ContextKind = Literal["Hosted", "Cached", "ImplicitlyCreated"]


class LdContextNotAvailable(HubError):
    status = 503
    type = NGSI_LD_ERRORS + "LdContextNotAvailable"
    title = "JSON-LD @context not available"


def is_core_context(url: str) -> bool:
    return _CORE_URL.fullmatch(url) is not None


@dataclass(frozen=True, slots=True)
class TermDefinition:
    iri: str
    type: str | None = None
    prefix: bool = True


@dataclass(eq=False, slots=True)
class StoredContext:
    """A context document held by the store, with what NGSI-LD's /jsonldContexts reports of it."""

    url: str
    local_id: str
    kind: ContextKind
    document: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)
    last_usage: datetime | None = None
    hits: int = 0
    expires: float | None = None  # time.monotonic() deadline of a fetched document
    path: Path | None = None  # file a preloaded document was read from

    def details(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "URL": self.url,
            "localId": self.local_id,
            "kind": self.kind,
            "createdAt": isoformat(self.created_at),
            "numberOfHits": self.hits,
        }
        if self.last_usage is not None:
            body["lastUsage"] = isoformat(self.last_usage)
        return body


class ActiveContext:
    """The terms in effect for one request. ``expand`` and ``compact`` are dict lookups."""

    __slots__ = ("_iris", "_prefixes", "_terms_of", "_used", "definitions", "urls", "value", "vocab")

    def __init__(
        self,
        definitions: dict[str, TermDefinition],
        vocab: str,
        *,
        value: Any,
        urls: list[str],
        used: tuple[StoredContext, ...] = (),
    ) -> None:
        self.definitions: Mapping[str, TermDefinition] = definitions
        self.vocab = vocab
        self.value = value  # the @context as given (None: the core context), to echo it in responses
        # The URLs given at the top level, for Link headers; the core's when none was (None, or inline
        # objects only: those have no URL unless the API hosts them as ImplicitlyCreated contexts).
        self.urls = urls
        self._used = used
        self._iris = {term: d.iri for term, d in definitions.items()}
        self._prefixes = {t: d.iri for t, d in definitions.items() if d.prefix and not d.iri.startswith("@")}
        self._terms_of: dict[str, str] = {}
        for term in sorted(definitions, key=lambda t: (len(t), t)):
            self._terms_of.setdefault(definitions[term].iri, term)

    def expand(self, term: str) -> str:
        iri = self._iris.get(term)
        if iri is not None:
            return iri
        prefix, colon, suffix = term.partition(":")
        if colon:
            if not suffix.startswith("//"):
                base = self._prefixes.get(prefix)
                if base is not None:
                    return base + suffix
            return term
        return self.vocab + term

    def compact(self, iri: str) -> str:
        """As JSON-LD compacts a name: the shortest term for ``iri``, else its @vocab-relative name
        (unless that name is a term for another IRI), else a compact IRI with the longest prefix
        (``ngsi-ld:default-context/x``), else ``iri`` itself. ``expand(compact(iri)) == iri``."""
        term = self._terms_of.get(iri)
        if term is not None:
            return term
        if iri.startswith(self.vocab):
            suffix = iri[len(self.vocab) :]
            if suffix and ":" not in suffix and suffix[0] != "@" and suffix not in self._iris:
                return suffix
        best = None
        for prefix, base in self._prefixes.items():
            if len(iri) > len(base) and iri.startswith(base) and (best is None or len(base) > len(best[1])):
                best = (prefix, base)
        if best is not None and not iri[len(best[1]) :].startswith("//"):
            return f"{best[0]}:{iri[len(best[1]) :]}"
        return iri


class _Builder:
    __slots__ = ("expires", "terms", "used", "vocab")

    def __init__(self, core: dict[str, TermDefinition]) -> None:
        self.terms = dict(core)
        self.vocab = DEFAULT_VOCAB
        self.used: dict[int, StoredContext] = {}
        self.expires: float | None = None

    def use(self, entry: StoredContext) -> None:
        self.used[id(entry)] = entry
        if entry.expires is not None and (self.expires is None or entry.expires < self.expires):
            self.expires = entry.expires


def _define_local(b: _Builder, local: dict[str, Any]) -> None:
    """Add the term definitions of one local context (a JSON object) to ``b``."""
    if "@vocab" in local:
        vocab = local["@vocab"]
        if vocab is None:
            b.vocab = DEFAULT_VOCAB
        elif isinstance(vocab, str) and vocab:
            known = b.terms.get(vocab)
            if known is not None:
                b.vocab = known.iri
            elif ":" in vocab:
                b.vocab = _expand_iri(b, vocab, {}, {}, "@vocab")
            else:
                raise BadRequestData(f"@vocab {vocab!r} is not an IRI")
        else:
            raise BadRequestData("@vocab must be an IRI or null")
    defined: dict[str, bool] = {}
    for term in local:
        if not term.startswith("@"):
            _define(b, term, local, defined)


def _define(b: _Builder, term: str, local: dict[str, Any], defined: dict[str, bool]) -> None:
    done = defined.get(term)
    if done:
        return
    if done is False:
        raise BadRequestData(f"cyclic IRI mapping in @context involving term {term!r}")
    if not term:
        raise BadRequestData("@context defines an empty term")
    defined[term] = False
    value = local[term]
    if value is None:
        b.terms.pop(term, None)
        defined[term] = True
        return
    if isinstance(value, str):
        value = {"@id": value}
    elif not isinstance(value, dict):
        raise BadRequestData(f"@context term {term!r} must map to a string, an object or null")
    type_ = value.get("@type")
    if type_ is not None and not isinstance(type_, str):
        raise BadRequestData(f"@type of @context term {term!r} must be a string")
    id_ = value.get("@id", term)
    if id_ is None:
        b.terms.pop(term, None)
        defined[term] = True
        return
    if not isinstance(id_, str):
        raise BadRequestData(f"@id of @context term {term!r} must be a string")
    iri = id_ if id_.startswith("@") else _expand_iri(b, id_, local, defined, term)
    prefix = value.get("@prefix", True) is not False and ":" not in term and "/" not in term
    b.terms[term] = TermDefinition(iri, type_, prefix)
    defined[term] = True


def _expand_iri(b: _Builder, value: str, local: dict[str, Any], defined: dict[str, bool], term: str) -> str:
    """Expand the IRI of a term definition, defining the terms it depends on first."""
    if value != term:
        if value in local:
            _define(b, value, local, defined)
        known = b.terms.get(value)
        if known is not None:
            return known.iri
    prefix, colon, suffix = value.partition(":")
    if not colon:
        return b.vocab + value
    if prefix == "_" or suffix.startswith("//"):
        return value
    if prefix != term and prefix in local:
        _define(b, prefix, local, defined)
    definition = b.terms.get(prefix)
    if definition is not None and definition.prefix and not definition.iri.startswith("@"):
        return definition.iri + suffix
    return value


def _check_value(value: Any) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not (item is None or isinstance(item, str | dict)):
            raise BadRequestData("@context must be a URL, an object, or an array of URLs and objects")


@functools.cache
def _core_document() -> dict[str, Any]:
    text = (
        resources.files("cityhub.hub.broker").joinpath("data/ngsi-ld-core-context-v1.9.jsonld").read_bytes()
    )
    document: dict[str, Any] = orjson.loads(text)
    return document


@functools.cache
def _core_terms() -> dict[str, TermDefinition]:
    b = _Builder({})
    _define_local(b, _core_document()["@context"])
    return b.terms


@functools.cache
def core_context() -> ActiveContext:
    """The active context of a request that gives none: the core context and its @vocab. Code in
    the hub's own process (applications, the rule engine) names attributes in it."""
    return ActiveContext(_core_terms(), DEFAULT_VOCAB, value=None, urls=[CORE_CONTEXT_URL])


def _parse_document(url: str, raw: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LdContextNotAvailable(f"@context {url} is not JSON") from None
    if not isinstance(document, dict) or "@context" not in document:
        raise LdContextNotAvailable(f"@context {url} is not a JSON-LD context document (no @context member)")
    try:
        _check_value(document["@context"])
    except BadRequestData as exc:
        raise LdContextNotAvailable(
            f"@context {url} is not a JSON-LD context document: {exc.detail}"
        ) from None
    return document


class ContextStore:
    """Context documents by URL, and the active contexts resolved from them.

    Documents come from: the shipped core context (under every core-context address); ``preload``
    (``{url: file}``, read at construction); ``add`` at run time (/jsonldContexts); and HTTP(S),
    fetched once and cached for ``ttl`` seconds. After the TTL a document is fetched again; if that
    fails, the stale copy is kept and the fetch retried a minute later.
    """

    def __init__(
        self,
        preload: Mapping[str, str | Path] | None = None,
        *,
        fetch_timeout: float = 5.0,
        ttl: float = 3600.0,
        max_document_size: int = 1 << 20,
        cache_size: int = 1024,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._timeout = fetch_timeout
        self._ttl = ttl
        self._max_size = max_document_size
        self._cache_size = cache_size
        self._client = client
        self._own_client = client is None
        self._by_url: dict[str, StoredContext] = {}
        self._by_id: dict[str, StoredContext] = {}
        self._active: dict[str | bytes | None, tuple[ActiveContext, float | None]] = {}
        self._inflight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._core = self._register(StoredContext(CORE_CONTEXT_URL, "core", "Cached", _core_document()))
        # Preloaded contexts are where their URLs are read from, not only a first cache content:
        # deleting the cached copy (DELETE /jsonldContexts/…) makes the next use read the file again.
        self._preload = {url: Path(path) for url, path in (preload or {}).items()}
        for url in self._preload:
            try:
                self._load_preloaded(url)
            except LdContextNotAvailable as exc:
                raise ValueError(f"preloaded @context {self._preload[url]}: {exc.detail}") from None

    def _load_preloaded(self, url: str) -> StoredContext:
        path = self._preload[url]
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise LdContextNotAvailable(f"@context {url}: cannot read {path}: {exc}") from None
        return self._register(
            StoredContext(url, new_id().hex, "Cached", _parse_document(url, raw), path=path)
        )

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    # -- the documents (for /jsonldContexts) ---------------------------------------------------

    def add(
        self,
        url: str,
        document: Any,
        *,
        kind: ContextKind = "Hosted",
        local_id: str | None = None,
    ) -> StoredContext:
        if not isinstance(document, dict) or "@context" not in document:
            raise BadRequestData("a JSON-LD context document is a JSON object with an @context member")
        _validate(document["@context"])
        local_id = local_id or new_id().hex
        if self._lookup(url) is not None or local_id in self._by_id:
            raise AlreadyExists(f"@context {url} is already held")
        self._active.clear()
        return self._register(StoredContext(url, local_id, kind, document))

    def implicit(self, value: Any, base_url: str) -> StoredContext | None:
        """The ``ImplicitlyCreated`` context standing for an @context that is not one URL (an
        array, an object), made on first use. Its id is a digest of the value, so every hub process,
        before and after a restart, names the same value with the same URL. None for a single URL,
        alone or as a one-item array (or no @context), which needs no stand-in."""
        if (
            value is None
            or isinstance(value, str)
            or (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str))
        ):
            return None
        digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        local_id = f"implicit-{digest}"
        entry = self._by_id.get(local_id)
        if entry is None:
            url = f"{base_url.rstrip('/')}/ngsi-ld/v1/jsonldContexts/{local_id}"
            entry = self._register(StoredContext(url, local_id, "ImplicitlyCreated", {"@context": value}))
            entry.hits, entry.last_usage = 1, utcnow()  # the request that brought it used it
        return entry

    def get(self, key: str) -> StoredContext:
        """The context with URL or local id ``key``."""
        entry = self._lookup(key) or self._by_id.get(key)
        if entry is None:
            raise NotFound(f"no @context {key} is held")
        return entry

    def list(self, kind: ContextKind | None = None) -> builtins.list[StoredContext]:
        return [entry for entry in self._by_url.values() if kind is None or entry.kind == kind]

    def remove(self, key: str) -> StoredContext:
        entry = self.get(key)
        if entry is self._core:
            raise BadRequestData("the NGSI-LD core @context cannot be deleted")
        del self._by_url[entry.url], self._by_id[entry.local_id]
        self._active.clear()
        return entry

    async def reload(self, key: str) -> StoredContext:
        """Read a cached context again from its source; the old copy stays if that fails."""
        entry = self.get(key)
        if entry.kind != "Cached":
            raise BadRequestData(
                f"@context {entry.url} is {entry.kind}, only Cached contexts can be reloaded"
            )
        if entry is self._core:
            return entry
        if entry.path is not None:
            try:
                raw = entry.path.read_bytes()
            except OSError as exc:
                raise LdContextNotAvailable(
                    f"@context {entry.url}: cannot read {entry.path}: {exc}"
                ) from None
            entry.document = _parse_document(entry.url, raw)
        else:
            entry.document = await self._fetch(entry.url)
            entry.expires = time.monotonic() + self._ttl
        self._active.clear()
        return entry

    def _register(self, entry: StoredContext) -> StoredContext:
        self._by_url[entry.url] = entry
        self._by_id[entry.local_id] = entry
        return entry

    def _lookup(self, url: str) -> StoredContext | None:
        if is_core_context(url):
            return self._core
        entry = self._by_url.get(url)
        if entry is None and "/jsonldContexts/" in url:
            # A context this hub hosts, named by another of the hub's addresses (host, port, proxy).
            entry = self._by_id.get(unquote(url.rsplit("/", 1)[1]))
            if entry is not None and entry.kind == "Cached":
                entry = None
        return entry

    # -- resolution ----------------------------------------------------------------------------

    async def resolve(self, value: Any) -> ActiveContext:
        """The active context for an @context value: None, a URL, an object, or an array of them."""
        if value is None or isinstance(value, str):
            key: str | bytes | None = value
        else:
            _check_value(value)
            key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        cached = self._active.get(key)
        if cached is not None and (cached[1] is None or cached[1] > time.monotonic()):
            active = cached[0]
        else:
            active, expires = await self._build(value)
            if len(self._active) >= self._cache_size:
                del self._active[next(iter(self._active))]
            self._active[key] = (active, expires)
        now = utcnow()
        for entry in active._used:
            entry.hits += 1
            entry.last_usage = now
        return active

    async def _build(self, value: Any) -> tuple[ActiveContext, float | None]:
        core = _core_terms()
        b = _Builder(core)
        b.use(self._core)
        await self._process(b, value, ())
        b.terms.update(core)
        items = value if isinstance(value, list) else [value]
        urls = [item for item in items if isinstance(item, str)] or [CORE_CONTEXT_URL]
        active = ActiveContext(b.terms, b.vocab, value=value, urls=urls, used=tuple(b.used.values()))
        return active, b.expires

    async def _process(self, b: _Builder, value: Any, chain: tuple[str, ...]) -> None:
        _check_value(value)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                b.terms = dict(_core_terms())
                b.vocab = DEFAULT_VOCAB
            elif isinstance(item, str):
                if is_core_context(item):
                    b.terms.update(_core_terms())
                    continue
                if item in chain:
                    raise BadRequestData(f"@context {item} includes itself: {' -> '.join((*chain, item))}")
                if len(chain) >= MAX_DEPTH:
                    raise BadRequestData(f"@context {item} is nested more than {MAX_DEPTH} levels deep")
                entry = await self._document(item)
                b.use(entry)
                await self._process(b, entry.document["@context"], (*chain, item))
            else:
                local: dict[str, Any] = item
                imported = local.get("@import")
                if imported is not None:
                    local = await self._imported(b, imported) | local
                _define_local(b, local)

    async def _imported(self, b: _Builder, url: Any) -> dict[str, Any]:
        if not isinstance(url, str):
            raise BadRequestData("@import must be a URL")
        entry = self._core if is_core_context(url) else await self._document(url)
        b.use(entry)
        imported = entry.document["@context"]
        if not isinstance(imported, dict):
            raise BadRequestData(f"@import {url}: its @context must be a single object")
        return imported

    async def _document(self, url: str) -> StoredContext:
        entry = self._lookup(url)
        if entry is not None and (entry.expires is None or entry.expires > time.monotonic()):
            return entry
        if entry is None and url in self._preload:
            return self._load_preloaded(url)
        if not url.startswith(("http://", "https://")):
            raise BadRequestData(f"@context {url!r} is neither an http(s) URL nor a context held here")
        try:
            document = await self._fetch(url)
        except LdContextNotAvailable as exc:
            if entry is None:
                raise
            log.warning("keeping the stale copy of @context %s: %s", url, exc.detail)
            entry.expires = time.monotonic() + min(self._ttl, _RETRY_AFTER)
            return entry
        entry = self._lookup(url)  # another request may have stored it meanwhile
        if entry is None:
            entry = self._register(StoredContext(url, new_id().hex, "Cached", document))
        entry.document = document
        entry.expires = time.monotonic() + self._ttl
        return entry

    async def _fetch(self, url: str) -> dict[str, Any]:
        """Fetch ``url`` once however many requests ask for it at the same time."""
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(self._download(url))
            self._inflight[url] = task
            task.add_done_callback(functools.partial(self._fetched, url))
        return await asyncio.shield(task)

    def _fetched(self, url: str, task: asyncio.Task[dict[str, Any]]) -> None:
        self._inflight.pop(url, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaits any more is not reported

    async def _download(self, url: str) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=True,
                max_redirects=5,
                headers={"Accept": f"{JSONLD_MEDIA_TYPE}, application/json;q=0.9"},
            )
        body = bytearray()
        try:
            async with asyncio.timeout(self._timeout), self._client.stream("GET", url) as response:
                if not response.is_success:
                    raise LdContextNotAvailable(
                        f"@context {url} could not be retrieved: HTTP {response.status_code}"
                    )
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_size:
                        raise LdContextNotAvailable(f"@context {url} is larger than {self._max_size} bytes")
        except TimeoutError:
            raise LdContextNotAvailable(f"@context {url} could not be retrieved: timed out") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LdContextNotAvailable(f"@context {url} could not be retrieved: {exc!r}") from None
        return _parse_document(url, bytes(body))


def _validate(value: Any) -> None:
    """Check an @context value without fetching anything: its shape and its local term definitions."""
    _check_value(value)
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            if not isinstance(item.get("@import", ""), str):
                raise BadRequestData("@import must be a URL")
            _define_local(_Builder(_core_terms()), item)


# -- HTTP Link header -------------------------------------------------------------------------------

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_LINK_VALUE = re.compile(
    rf'\s*<([^<>]*)>((?:\s*;\s*{_TOKEN}(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s;,"]+))?)*)\s*(?:,|\Z)'
)
_PARAM = re.compile(rf'\s*;\s*({_TOKEN})(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;,"]+)))?')


def parse_link_header(value: str | None) -> str | None:
    """The URL of the JSON-LD context link in a Link header, or None if there is none.

    A malformed header, a link without ``rel``, a context link of another type than
    application/ld+json, or more than one context link is a BadRequestData.
    """
    if not value:
        return None
    return _parse_link_header(value)


@functools.lru_cache(maxsize=512)
def _parse_link_header(value: str) -> str | None:
    found: str | None = None
    pos = 0
    while value[pos:].strip():
        link = _LINK_VALUE.match(value, pos)
        if link is None:
            raise BadRequestData(f"malformed Link header: {value!r}")
        pos = link.end()
        params: dict[str, str] = {}
        for param in _PARAM.finditer(link.group(2)):
            quoted = param.group(2)
            text = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else param.group(3) or ""
            params.setdefault(param.group(1).lower(), text)
        if "rel" not in params:
            raise BadRequestData(f"Link header without rel: {value!r}")
        if CONTEXT_REL not in params["rel"].split():
            continue
        if params.get("type", JSONLD_MEDIA_TYPE).lower() != JSONLD_MEDIA_TYPE:
            raise BadRequestData(f"a JSON-LD context Link must have type {JSONLD_MEDIA_TYPE}: {value!r}")
        if found is not None:
            raise BadRequestData("more than one JSON-LD context Link header")
        found = link.group(1).strip()
        if not found:
            raise BadRequestData("JSON-LD context Link header with an empty URL")
    return found


def link_header(url: str) -> str:
    return f'<{url}>; rel="{CONTEXT_REL}"; type="{JSONLD_MEDIA_TYPE}"'
