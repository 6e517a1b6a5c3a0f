"""Document ingestion into the built-in assistant's vector index.

Embedded Qdrant allows one process per data directory, so while a server runs,
`trellis ingest --server URL` sends documents here instead of opening it.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from server.core.errors import InvalidRequest
from server.core.schemas import Body
from server.http.deps import OwnerDep
from server.http.routes import CheckedRoute

router = APIRouter(prefix="/documents", tags=["documents"], route_class=CheckedRoute)

MAX_DOCUMENT_CHARS = 2_000_000


class Document(Body):
    source: str = Field(min_length=1, max_length=1024)
    """A stable name (e.g. a relative path); re-ingesting the same source replaces its chunks."""
    text: str = Field(max_length=MAX_DOCUMENT_CHARS)


class IngestRequest(Body):
    documents: list[Document] = Field(min_length=1, max_length=1000)
    collection: str | None = Field(default=None, min_length=1, max_length=128)


@router.post("/ingest")
async def ingest(body: IngestRequest, owner: OwnerDep) -> dict[str, object]:
    """Chunk, embed and upsert documents into the caller's own part of the collection;
    idempotent per source. Never creates a shared collection."""
    from tools.retrieval import CollectionRefused, ingest_documents
    from tools.toolbox import installed_toolbox

    toolbox = installed_toolbox()
    if toolbox is None:
        raise InvalidRequest("this server does not serve the built-in assistant; nothing to ingest")
    try:
        scope = toolbox.resolve_collection(body.collection, owner)
    except CollectionRefused as error:
        raise InvalidRequest(str(error)) from None
    await toolbox.prepare()
    report = await ingest_documents(
        [(doc.source, doc.text) for doc in body.documents],
        index=toolbox.index,
        embedder=toolbox.embedder,
        collection=scope.name,
        owner=owner,
    )
    return {
        "collection": scope.name,
        "documents": report.files,
        "chunks": report.chunks,
        "skipped": list(report.skipped),
        "total_chunks": await toolbox.index.count(scope.name, owner=owner),
    }
