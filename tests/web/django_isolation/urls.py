"""The views: rows streamed from queryset.iterator(), each line tagged with the request's id
(``/rows``); a 2 MiB page written into an HttpResponse piece by piece (``/big``)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from tests.web.django_isolation.models import Row


def rows(request: HttpRequest) -> StreamingHttpResponse:
    rid = request.GET["id"]
    gate = request.environ.get("cogen") if request.GET.get("op") else None

    def body() -> Iterator[Any]:
        for row in Row.objects.order_by("n").iterator(chunk_size=2):
            if gate is not None:
                yield gate.core.events.Sleep(0)  # lets other requests run in between
            # read the request again for every row: it must still be this one
            yield f"{request.GET['id']}:{rid}:{row.n}\n"

    return StreamingHttpResponse(body(), content_type="text/plain")


#: 32 pieces of 64 KiB, each different, so a piece out of place shows.
BIG_PIECES = [bytes([65 + i % 26]) * (64 * 1024 - 1) + b"%d" % (i % 10) for i in range(32)]


def big(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(content_type="application/octet-stream")
    for piece in BIG_PIECES:
        response.write(piece)
    return response


urlpatterns = [path("rows", rows), path("big", big)]
