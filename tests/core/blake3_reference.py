"""A small, slow, obviously-correct BLAKE3 (unkeyed, 32-byte digest) written from the specification.

Test oracle only (about 1 MB/s): it needs nothing but the standard library, so GPU machines without
the ``blake3`` package can still check digests.
"""

from __future__ import annotations

import struct

IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
MSG_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
CHUNK_LEN = 1024
BLOCK_LEN = 64
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
MASK = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & MASK


def _g(s: list[int], a: int, b: int, c: int, d: int, mx: int, my: int) -> None:
    s[a] = (s[a] + s[b] + mx) & MASK
    s[d] = _rotr(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotr(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b] + my) & MASK
    s[d] = _rotr(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotr(s[b] ^ s[c], 7)


def _compress(
    cv: tuple[int, ...], block: bytes, counter: int, block_len: int, flags: int
) -> tuple[int, ...]:
    """The compression function truncated to the 8-word chaining value."""
    m = list(struct.unpack("<16I", block.ljust(BLOCK_LEN, b"\0")))
    s = list(cv) + list(IV[:4]) + [counter & MASK, (counter >> 32) & MASK, block_len, flags]
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in MSG_PERMUTATION]
    return tuple(s[i] ^ s[i + 8] for i in range(8))


def _chunk_cv(chunk: bytes, counter: int, root: bool) -> tuple[int, ...]:
    cv: tuple[int, ...] = IV
    blocks = [chunk[i : i + BLOCK_LEN] for i in range(0, len(chunk), BLOCK_LEN)] or [b""]
    for i, block in enumerate(blocks):
        flags = (CHUNK_START if i == 0 else 0) | (CHUNK_END if i == len(blocks) - 1 else 0)
        if root and i == len(blocks) - 1:
            flags |= ROOT
        cv = _compress(cv, block, counter, len(block), flags)
    return cv


def _subtree_cv(data: bytes, first_chunk: int, nchunks: int, root: bool) -> tuple[int, ...]:
    """Chaining value of chunks [first_chunk, first_chunk + nchunks), by the spec's recursive split."""
    if nchunks == 1:
        start = first_chunk * CHUNK_LEN
        return _chunk_cv(data[start : start + CHUNK_LEN], first_chunk, root)
    left = 1 << ((nchunks - 1).bit_length() - 1)  # largest power of two strictly below nchunks
    lcv = _subtree_cv(data, first_chunk, left, False)
    rcv = _subtree_cv(data, first_chunk + left, nchunks - left, False)
    block = struct.pack("<8I", *lcv) + struct.pack("<8I", *rcv)
    return _compress(IV, block, 0, BLOCK_LEN, PARENT | (ROOT if root else 0))


def blake3(data: bytes) -> bytes:
    """The 32-byte BLAKE3 digest of ``data``."""
    data = bytes(data)
    nchunks = max(1, -(-len(data) // CHUNK_LEN))
    return struct.pack("<8I", *_subtree_cv(data, 0, nchunks, True))


def official_input(length: int) -> bytes:
    """The official test vectors' input: byte i is i % 251."""
    return bytes(i % 251 for i in range(length))
