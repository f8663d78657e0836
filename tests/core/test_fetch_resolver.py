"""The connect-time guard with a resolver chosen by the test: every answer is checked, and the
address dialled is one of the answers checked (nothing is resolved twice)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import anyio
import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from imagekit import jpeg_bytes
from originkit import body, redirect, serve

from chitram_core.errors import FetchFailed, UrlNotAllowed, ValidationError
from chitram_core.fetch import Fetcher
from chitram_core.fetch.addresses import IPAddress
from chitram_core.settings import Settings

pytestmark = pytest.mark.anyio


class Answers:
    """A resolver answering from a script: each call for a name takes the next answer list."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self.script = {name: list(answers) for name, answers in script.items()}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        answers = self.script[host]
        current = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in current]


def fetcher(tmp_path: Path, resolver: Answers, port: int, *allow: str) -> Fetcher:
    settings = Settings(data_dir=tmp_path, fetch_allow_ports=(port,), fetch_allow_networks=allow)
    return Fetcher(settings, resolver=resolver)


async def read(f: Fetcher, url: str) -> bytes:
    async with f.open(url) as fetched:
        return b"".join([chunk async for chunk in fetched.raw()])


async def test_a_name_with_one_forbidden_answer_among_public_ones_is_refused(
    tmp_path: Path,
) -> None:
    with serve({"/a.jpg": body(jpeg_bytes())}) as origin:
        resolver = Answers({"mixed.test": [["93.184.216.34", "127.0.0.1"]]})
        f = fetcher(tmp_path, resolver, origin.port)
        with pytest.raises(UrlNotAllowed, match=r"127\.0\.0\.1"):
            await read(f, f"http://mixed.test:{origin.port}/a.jpg")
    assert origin.hits == []


async def test_rebinding_after_the_check_cannot_move_the_connection(tmp_path: Path) -> None:
    data = jpeg_bytes()
    with serve({"/a.jpg": body(data)}) as origin:
        # First answer: the (opened) test server; any later lookup would say 10.0.0.1.
        resolver = Answers({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
        f = fetcher(tmp_path, resolver, origin.port, "127.0.0.1/32")
        assert await read(f, f"http://rebind.test:{origin.port}/a.jpg") == data
    assert resolver.calls == ["rebind.test"]  # resolved once: the dialled address was checked
    assert origin.hits == ["/a.jpg"]


async def test_a_name_first_answering_a_forbidden_address_never_connects(tmp_path: Path) -> None:
    with serve({"/a.jpg": body(jpeg_bytes())}) as origin:
        resolver = Answers({"rebind.test": [["10.0.0.1"], ["127.0.0.1"]]})
        f = fetcher(tmp_path, resolver, origin.port, "127.0.0.1/32")
        with pytest.raises(UrlNotAllowed, match="private"):
            await read(f, f"http://rebind.test:{origin.port}/a.jpg")
    assert origin.hits == []


async def test_every_redirect_hop_is_resolved_and_checked(tmp_path: Path) -> None:
    with (
        serve({"/a.jpg": body(jpeg_bytes())}, host="127.0.0.2") as inside,
        serve({"/go": redirect(f"http://inside.test:{inside.port}/a.jpg")}) as origin,
    ):
        resolver = Answers({"outside.test": [["127.0.0.1"]], "inside.test": [["127.0.0.2"]]})
        settings = Settings(
            data_dir=tmp_path,
            fetch_allow_ports=(origin.port, inside.port),
            fetch_allow_networks=("127.0.0.1/32",),
        )
        f = Fetcher(settings, resolver=resolver)
        with pytest.raises(UrlNotAllowed, match="loopback"):
            await read(f, f"http://outside.test:{origin.port}/go")
    assert resolver.calls == ["outside.test", "inside.test"]
    assert inside.hits == []


async def test_the_host_header_keeps_the_name_while_the_address_is_dialled(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    def handler(h):  # type: ignore[no-untyped-def]
        seen.append(h.headers["Host"])
        body(jpeg_bytes())(h)

    with serve({"/a.jpg": handler}) as origin:
        resolver = Answers({"images.test": [["127.0.0.1"]]})
        f = fetcher(tmp_path, resolver, origin.port, "127.0.0.1/32")
        await read(f, f"http://images.test:{origin.port}/a.jpg")
    assert seen == [f"images.test:{origin.port}"]


async def test_a_name_with_no_answer_is_a_fetch_failure(tmp_path: Path) -> None:
    resolver = Answers({"void.test": [[]]})
    f = fetcher(tmp_path, resolver, 80)
    with pytest.raises(FetchFailed):
        await read(f, "http://void.test/a.jpg")


def _part(value: int, base: str) -> str:
    return {"dec": str(value), "hex": hex(value), "oct": "0" + oct(value)[2:]}[base]


BASES = st.sampled_from(["dec", "hex", "oct"])


@st.composite
def loopback_hosts(draw: st.DrawFn) -> str:
    """127.0.0.1 written any way a URL parser or ``inet_aton`` understands it."""
    form = draw(st.sampled_from(["dotted", "three", "two", "one", "mapped"]))
    if form == "dotted":
        return ".".join(_part(v, draw(BASES)) for v in (127, 0, 0, 1))
    if form == "three":  # a.b.c, c a 16-bit number
        return ".".join(_part(v, draw(BASES)) for v in (127, 0, 1))
    if form == "two":  # a.b, b a 24-bit number
        return ".".join(_part(v, draw(BASES)) for v in (127, 1))
    if form == "one":
        text = _part(0x7F000001, draw(BASES))
        return text.upper() if draw(st.booleans()) else text
    mapped = draw(
        st.sampled_from(
            ["::ffff:127.0.0.1", "::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:0001", "::FFFF:7F00:1"]
        )
    )
    return f"[{mapped}]"


def test_every_spelling_of_loopback_is_refused_and_nothing_reaches_it(tmp_path: Path) -> None:
    """The server on 127.0.0.1 counts requests; no spelling of its address gets one through,
    while with loopback opened the plain spelling does (the server is reachable)."""
    with serve({"/a.jpg": body(jpeg_bytes())}) as origin:
        closed = Fetcher(Settings(data_dir=tmp_path, fetch_allow_ports=(origin.port,)))
        opened = Fetcher(
            Settings(
                data_dir=tmp_path,
                fetch_allow_ports=(origin.port,),
                fetch_allow_networks=("127.0.0.0/8",),
            )
        )

        @hypothesis.settings(
            max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(host=loopback_hosts())
        def refused(host: str) -> None:
            async def main() -> None:
                with pytest.raises((UrlNotAllowed, ValidationError)):
                    await read(closed, f"http://{host}:{origin.port}/a.jpg")

            anyio.run(main)
            assert origin.hits == [], host

        refused()

        async def control() -> bytes:
            return await read(opened, f"http://127.0.0.1:{origin.port}/a.jpg")

        assert anyio.run(control) == jpeg_bytes()
    assert origin.hits == ["/a.jpg"]
