"""The client SDK: everything that encrypts or decrypts happens here."""
