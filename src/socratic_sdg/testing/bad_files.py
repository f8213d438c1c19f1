"""A corpus of files a converter must survive: each one fails alone, with a reason."""

from __future__ import annotations

from pathlib import Path


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """Assemble a PDF with a correct xref table from numbered object bodies."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra + b">>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypted_pdf() -> bytes:
    """A PDF protected by a user password (standard security handler, RC4 40-bit)."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
            b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> /P -44 >>",
        ],
        trailer_extra=b"/Encrypt 4 0 R /ID [<" + b"ab" * 16 + b"> <" + b"ab" * 16 + b">] ",
    )


def write_bad_corpus(folder: Path) -> dict[str, str]:
    """Write the bad files into ``folder``; returns {relative name: what is wrong}."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "zero-bytes.pdf": b"",
        "corrupt-bytes.pdf": b"%PDF-1.4\n" + bytes(range(256)) * 8,
        "text-named-pdf.pdf": b"This is a plain text file that only pretends to be a PDF.\n" * 5,
        "encrypted.pdf": encrypted_pdf(),
        "truncated.pdf": _pdf([b"<< /Type /Catalog /Pages 2 0 R >>"])[:60],
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    (folder / "a-folder.pdf").mkdir()
    return {**{name: "bad bytes" for name in bad}, "a-folder.pdf": "directory"}
