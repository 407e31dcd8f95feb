//! RFC 9530 `Content-Digest`: parsing (sha-256, sha-512) and an incremental body hasher.
