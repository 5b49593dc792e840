"""Veil's cryptography: pure functions and value types, no I/O.

Modules, bottom up:

- ``errors``   the exception tree
- ``encoding`` strict readers for the versioned wire formats
- ``pairing``  BLS12-381 groups, canonical encodings, RFC 9380 H2, blinding
               (the only module that touches the pairing libraries)
- ``signing``  Ed25519 device signatures
- ``pre``      multi-hop transform cryptography (proxy re-encryption)
- ``schnorr``  proofs of possession for PRE key pairs
- ``aead``     document envelopes (single-shot and streaming AES-256-GCM)
- ``sframe``   RFC 9605 media frame encryption
- ``schedule`` the meeting key schedule (session, SFrame sender and chat keys; KIDs)
- ``chat``     meeting chat sealing
- ``escrow``   user-key escrow and the split-trust password
- ``sealing``  a service's own sealing of its secrets
"""
